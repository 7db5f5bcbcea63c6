//! Entry points shared by the fuzz targets (`fuzz/`) and by the test that replays their
//! committed corpus (`tests/fuzz_corpus.rs`). Each one feeds arbitrary bytes to a decoder and
//! checks what can be checked: no panic, and anything that decodes re-encodes to a value that
//! decodes the same.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::codec::ThriftStruct;
use crate::frame::{ClientCodec, ServerCodec};
use crate::rpc::{
    parse_request, MetaRequest, MetaResponse, ParsedRequest, Request, RrdbRequest, RrdbResponse,
};
use crate::thrift::Reader;

/// Feeds bytes to the server codec in pieces (the first byte picks the piece size), then
/// parses every frame that comes out.
pub fn server_frames(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut codec = ServerCodec::new(1 << 20);
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => request_body(&frame.body),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Parses a request body (message begin + args) and checks that a decoded request
/// re-encodes to the same request.
pub fn request_body(data: &[u8]) {
    let Ok(ParsedRequest::Known { message, request }) =
        parse_request(bytes::Bytes::copy_from_slice(data))
    else {
        return;
    };
    let args = match &request {
        Request::Rrdb(r) => r.encode_args(),
        Request::Meta(m) => m.encode_args(),
    };
    let again = match &request {
        Request::Rrdb(_) => RrdbRequest::decode(&message.name, &mut Reader::new(args))
            .ok()
            .flatten()
            .map(Request::Rrdb),
        Request::Meta(_) => MetaRequest::decode(&message.name, &mut Reader::new(args))
            .ok()
            .flatten()
            .map(Request::Meta),
    };
    assert_eq!(
        again.as_ref(),
        Some(&request),
        "re-encoded request decodes differently"
    );
}

/// Feeds bytes to the client codec and decodes each reply as every response type.
pub fn client_frames(data: &[u8]) {
    let mut codec = ClientCodec::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(reply)) = codec.decode(&mut buf) {
        for name in RrdbRequest::NAMES {
            let _ = RrdbResponse::decode(name, &reply);
        }
        for name in MetaRequest::NAMES {
            let _ = MetaResponse::decode(name, &reply);
        }
    }
}

/// Decodes one struct; if it decodes, its encoding must decode to the same value.
pub fn decode_struct<T: ThriftStruct + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(v) = T::from_bytes(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = T::from_bytes(v.to_bytes());
    assert_eq!(
        again.as_ref().ok(),
        Some(&v),
        "re-encoded struct decodes differently"
    );
}

/// Runs the entry point named `target` (the fuzz target's name) on `data`. Returns false for
/// an unknown name.
pub fn run(target: &str, data: &[u8]) -> bool {
    use crate::meta::*;
    use pegasus_core::rrdb::*;
    match target {
        "server_frames" => server_frames(data),
        "client_frames" => client_frames(data),
        "request_body" => request_body(data),
        "update_request" => decode_struct::<UpdateRequest>(data),
        "multi_put_request" => decode_struct::<MultiPutRequest>(data),
        "multi_remove_request" => decode_struct::<MultiRemoveRequest>(data),
        "incr_request" => decode_struct::<IncrRequest>(data),
        "check_and_set_request" => decode_struct::<CheckAndSetRequest>(data),
        "check_and_mutate_request" => decode_struct::<CheckAndMutateRequest>(data),
        "multi_get_request" => decode_struct::<MultiGetRequest>(data),
        "batch_get_request" => decode_struct::<BatchGetRequest>(data),
        "get_scanner_request" => decode_struct::<GetScannerRequest>(data),
        "scan_request" => decode_struct::<ScanRequest>(data),
        "query_cfg_request" => decode_struct::<QueryCfgRequest>(data),
        "create_app_request" => decode_struct::<CreateAppRequest>(data),
        "drop_app_request" => decode_struct::<DropAppRequest>(data),
        "recall_app_request" => decode_struct::<RecallAppRequest>(data),
        "list_apps_request" => decode_struct::<ListAppsRequest>(data),
        "list_nodes_request" => decode_struct::<ListNodesRequest>(data),
        "update_app_env_request" => decode_struct::<UpdateAppEnvRequest>(data),
        "meta_control_request" => decode_struct::<MetaControlRequest>(data),
        "max_replica_count_request" => decode_struct::<SetMaxReplicaCountRequest>(data),
        _ => return false,
    }
    true
}

/// Every fuzz target name.
pub const TARGETS: &[&str] = &[
    "server_frames",
    "client_frames",
    "request_body",
    "update_request",
    "multi_put_request",
    "multi_remove_request",
    "incr_request",
    "check_and_set_request",
    "check_and_mutate_request",
    "multi_get_request",
    "batch_get_request",
    "get_scanner_request",
    "scan_request",
    "query_cfg_request",
    "create_app_request",
    "drop_app_request",
    "recall_app_request",
    "list_apps_request",
    "list_nodes_request",
    "update_app_env_request",
    "meta_control_request",
    "max_replica_count_request",
];
