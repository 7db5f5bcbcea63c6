//! `pegasus redis-proxy` driven by the real `redis-cli` (Debian redis-tools), in front of
//! table `temp` of a onebox.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onebox::{serial, Onebox};

struct ProxyProc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(ob: &Onebox) -> ProxyProc {
    start_proxy_with(ob, &[])
}

fn start_proxy_with(ob: &Onebox, extra: &[&str]) -> ProxyProc {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metas = ob
        .metas
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let child = Command::new(env!("CARGO_BIN_EXE_pegasus"))
        .args([
            "redis-proxy",
            "--listen",
            &addr.to_string(),
            "--meta",
            &metas,
            "--table",
            "temp",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "proxy not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    ProxyProc { child, addr }
}

/// `redis-cli -p PORT args...`; its stdout, trimmed.
fn cli(p: &ProxyProc, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &p.addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli is missing: run scripts/setup.sh (installs redis-tools)");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// `redis-cli -x ...` with the last argument read from stdin.
fn cli_stdin(p: &ProxyProc, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &p.addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli is missing: run scripts/setup.sh (installs redis-tools)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_commands_work_through_the_proxy() {
    let _g = serial();
    let ob = Onebox::start(3, 4);
    let p = start_proxy(&ob);

    assert_eq!(cli(&p, &["PING"]), "PONG");
    assert_eq!(cli(&p, &["PING", "hi"]), "hi");
    assert_eq!(cli(&p, &["ECHO", "hello world"]), "hello world");
    assert_eq!(cli(&p, &["SELECT", "0"]), "OK");
    assert!(cli(&p, &["SELECT", "1"]).starts_with("ERR"));

    assert_eq!(cli(&p, &["SET", "k1", "v1"]), "OK");
    assert_eq!(cli(&p, &["GET", "k1"]), "v1");
    assert_eq!(cli(&p, &["GET", "missing"]), "");
    assert_eq!(cli(&p, &["EXISTS", "k1", "missing", "k1"]), "2");

    // NX / XX through check_and_set.
    assert_eq!(cli(&p, &["SET", "k1", "other", "NX"]), "");
    assert_eq!(cli(&p, &["GET", "k1"]), "v1");
    assert_eq!(cli(&p, &["SET", "nx", "first", "NX"]), "OK");
    assert_eq!(cli(&p, &["SET", "absent", "x", "XX"]), "");
    assert_eq!(cli(&p, &["GET", "absent"]), "");
    assert_eq!(cli(&p, &["SET", "k1", "v2", "XX"]), "OK");
    assert_eq!(cli(&p, &["GET", "k1"]), "v2");

    // TTLs.
    assert_eq!(cli(&p, &["TTL", "k1"]), "-1");
    assert_eq!(cli(&p, &["TTL", "missing"]), "-2");
    assert_eq!(cli(&p, &["PTTL", "missing"]), "-2");
    assert_eq!(cli(&p, &["SET", "t", "v", "EX", "100"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "t"]).parse().unwrap();
    assert!((95..=100).contains(&ttl), "{ttl}");
    let pttl: i64 = cli(&p, &["PTTL", "t"]).parse().unwrap();
    assert!((95_000..=100_000).contains(&pttl), "{pttl}");
    assert_eq!(cli(&p, &["SET", "px", "v", "PX", "1500"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "px"]).parse().unwrap();
    assert!(
        (1..=2).contains(&ttl),
        "PX rounds up to whole seconds: {ttl}"
    );
    assert_eq!(cli(&p, &["SETEX", "se", "50", "v"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "se"]).parse().unwrap();
    assert!((45..=50).contains(&ttl), "{ttl}");
    assert_eq!(cli(&p, &["PSETEX", "pse", "1000", "v"]), "OK");
    assert_eq!(cli(&p, &["SETEX", "short", "1", "v"]), "OK");
    assert_eq!(cli(&p, &["EXPIRE", "k1", "200"]), "1");
    let ttl: i64 = cli(&p, &["TTL", "k1"]).parse().unwrap();
    assert!((195..=200).contains(&ttl), "{ttl}");
    assert_eq!(cli(&p, &["GET", "k1"]), "v2", "EXPIRE keeps the value");
    assert_eq!(cli(&p, &["EXPIRE", "missing", "10"]), "0");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(cli(&p, &["GET", "short"]), "", "expired");
    assert_eq!(cli(&p, &["TTL", "short"]), "-2");
    assert!(cli(&p, &["SET", "bad", "v", "EX", "0"]).starts_with("ERR invalid expire time"));
    assert!(cli(&p, &["SET", "bad", "v", "NX", "XX"]).starts_with("ERR syntax error"));

    // Counters.
    assert_eq!(cli(&p, &["INCR", "n"]), "1");
    assert_eq!(cli(&p, &["INCRBY", "n", "41"]), "42");
    assert_eq!(cli(&p, &["DECR", "n"]), "41");
    assert_eq!(cli(&p, &["DECRBY", "n", "40"]), "1");
    assert_eq!(cli(&p, &["SET", "word", "abc"]), "OK");
    assert_eq!(
        cli(&p, &["INCR", "word"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        cli(&p, &["INCRBY", "n", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cli(&p, &["GET", "word"]), "abc");

    // Several keys.
    assert_eq!(cli(&p, &["MSET", "m1", "a", "m2", "b", "m3", "c"]), "OK");
    assert_eq!(cli(&p, &["MGET", "m1", "nope", "m3"]), "a\n\nc");
    assert_eq!(cli(&p, &["DEL", "m1", "m2", "nope"]), "2");
    assert_eq!(cli(&p, &["DEL", "m1"]), "0");
    assert_eq!(cli(&p, &["MGET", "m1", "m2", "m3"]), "\n\nc");

    // Start-up probes of tools, and errors.
    assert_eq!(cli(&p, &["CONFIG", "GET", "appendonly"]), "appendonly\nno");
    assert!(cli(&p, &["COMMAND"]).starts_with("ERR COMMAND is not supported"));
    assert!(cli(&p, &["HELLO", "3"]).starts_with("NOPROTO"));
    assert_eq!(cli(&p, &["FLUSHALL"]), "ERR unknown command 'FLUSHALL'");
    assert_eq!(
        cli(&p, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );

    // A value over Pegasus's 1 MiB write limit is refused, the connection stays usable.
    let big = "x".repeat((1 << 20) + 100);
    let out = cli_stdin(&p, &["-x", "SET", "big"], big.as_bytes());
    assert!(
        out.starts_with("ERR internal error") && out.contains("ERR_INVALID_DATA"),
        "{out}"
    );

    // The data is the table's: the Rust client sees it (hash key = Redis key, sort key "").
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        assert_eq!(
            t.get(b"k1", b"").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
    });
}

#[test]
fn malformed_resp_closes_only_that_connection() {
    let _g = serial();
    // This one runs the proxy that `pegasus onebox --redis-port` starts.
    let ob = Onebox::start_with_redis(3, 2);
    let p = ProxyProc {
        child: Command::new("true").spawn().unwrap(),
        addr: ob.redis.unwrap(),
    };
    let mut good = TcpStream::connect(p.addr).unwrap();
    good.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = good.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");

    for bad in [
        &b"*1\r\n:oops\r\n"[..],
        b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
        b"*-7x\r\n",
    ] {
        let mut c = TcpStream::connect(p.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(bad).unwrap();
        let mut all = Vec::new();
        let _ = c.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.starts_with("-ERR Protocol error"),
            "{bad:?} -> {text:?}"
        );
    }

    // Pipelined requests on the good connection are still answered in order.
    good.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\np\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\np\r\n*2\r\n$3\r\nGET\r\n$1\r\np\r\n").unwrap();
    let mut got = Vec::new();
    while got.len() < b"+OK\r\n:2\r\n$1\r\n2\r\n".len() {
        let n = good.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&got[..], b"+OK\r\n:2\r\n$1\r\n2\r\n");

    // QUIT answers +OK and closes.
    good.write_all(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
    let mut rest = Vec::new();
    good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = good.read_to_end(&mut rest);
    assert_eq!(&rest[..], b"+OK\r\n");
}

/// Sends PING on `c` and reads the reply.
fn ping(c: &mut TcpStream) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn clients_over_maxclients_get_redis_error_and_a_close_at_once() {
    let _g = serial();
    let ob = Onebox::start(3, 2);
    let p = start_proxy_with(&ob, &["--maxclients", "2"]);
    // start_proxy's own probe connection may still hold a slot for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    while held.len() < 2 {
        let mut c = TcpStream::connect(p.addr).unwrap();
        match c.write_all(b"*1\r\n$4\r\nPING\r\n").and_then(|()| {
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf)?;
            Ok(buf[..n].to_vec())
        }) {
            Ok(r) if r == b"+PONG\r\n" => held.push(c),
            _ => {
                assert!(Instant::now() < deadline, "two clients never got in");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // The third: Redis's refusal, then EOF, without waiting for anything.
    let started = Instant::now();
    let mut third = TcpStream::connect(p.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut all = Vec::new();
    let _ = third.read_to_end(&mut all);
    assert_eq!(
        String::from_utf8_lossy(&all),
        "-ERR max number of clients reached\r\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The admitted clients are still served; when one leaves, a new one gets in.
    assert_eq!(ping(&mut held[0]), b"+PONG\r\n");
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(p.addr).unwrap();
        let _ = c.write_all(b"*1\r\n$4\r\nPING\r\n");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        if &buf[..n] == b"+PONG\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot came back: {:?}",
            &buf[..n]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ping(&mut held[0]), b"+PONG\r\n");
}
