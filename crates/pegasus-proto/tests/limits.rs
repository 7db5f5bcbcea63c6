//! Hostile input: oversize frames are refused before any buffer grows; garbage is an error,
//! never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use bytes::{BufMut, BytesMut};
use pegasus_proto::frame::FrameError;
use pegasus_proto::{ClientCodec, ServerCodec};
use tokio_util::codec::Decoder;

fn v0_header(body_len: u32) -> BytesMut {
    let mut b = BytesMut::with_capacity(64);
    b.put_slice(b"THFT");
    b.put_u32(0);
    b.put_u32(48);
    b.put_u32(0);
    b.put_u32(body_len);
    b.put_u32(0);
    b.put_slice(&[0u8; 24]);
    b
}

#[test]
fn a_frame_declaring_a_4_gib_body_is_refused_without_allocating_it() {
    let mut buf = v0_header(u32::MAX);
    let before = buf.capacity();
    let err = ServerCodec::default().decode(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { len, .. } if len == 48 + u64::from(u32::MAX)));
    assert_eq!(
        buf.capacity(),
        before,
        "the codec must not reserve for a refused frame"
    );
    assert!(buf.capacity() < 1024);

    let mut b = BytesMut::with_capacity(64);
    b.put_slice(b"THFT");
    b.put_u32(1);
    b.put_u32(16);
    b.put_u32(u32::MAX);
    let before = b.capacity();
    assert!(matches!(
        ServerCodec::default().decode(&mut b),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(b.capacity(), before);

    let mut reply = BytesMut::with_capacity(64);
    reply.put_u32(u32::MAX);
    let before = reply.capacity();
    assert!(matches!(
        ClientCodec::default().decode(&mut reply),
        Err(FrameError::TooLarge { .. })
    ));
    assert_eq!(reply.capacity(), before);
}

#[test]
fn the_frame_limit_is_configurable() {
    let mut buf = v0_header(1000);
    assert!(matches!(
        ServerCodec::new(1024).decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
    let mut buf = v0_header(1000);
    // Within the limit: the codec waits for the body.
    assert!(ServerCodec::new(2048).decode(&mut buf).unwrap().is_none());
}

#[test]
fn http_and_unknown_magic_are_distinguished() {
    let mut buf = BytesMut::from(&b"GET /metrics HTTP/1.1\r\n"[..]);
    assert!(matches!(
        ServerCodec::default().decode(&mut buf),
        Err(FrameError::Http)
    ));
    let mut buf = BytesMut::from(&b"RDSN...."[..]);
    assert!(matches!(
        ServerCodec::default().decode(&mut buf),
        Err(FrameError::BadMagic(_))
    ));
    let mut buf = v0_header(0);
    buf[11] = 47;
    assert!(matches!(
        ServerCodec::default().decode(&mut buf),
        Err(FrameError::BadHeaderLength(47))
    ));
    let mut buf = v0_header(0);
    buf[7] = 9;
    assert!(matches!(
        ServerCodec::default().decode(&mut buf),
        Err(FrameError::UnsupportedVersion(9))
    ));
}

#[test]
fn short_input_waits_for_more() {
    for n in 0..48 {
        let full = v0_header(0);
        let mut part = BytesMut::from(&full[..n]);
        assert!(
            ServerCodec::default().decode(&mut part).unwrap().is_none(),
            "{n} bytes"
        );
    }
}
