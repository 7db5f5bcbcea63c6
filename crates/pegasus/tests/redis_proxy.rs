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
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use onebox::{serial, wait_until, Onebox};

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

/// A proxy of the test's own in front of the onebox the command tests share, and the test's
/// turn on it (each test writes keys of its own).
fn shared_proxy() -> (MutexGuard<'static, ()>, &'static Onebox, ProxyProc) {
    let turn = serial();
    let ob = Onebox::shared();
    let p = start_proxy(ob);
    (turn, ob, p)
}

#[test]
fn ping_and_echo_answer_like_redis() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["PING"]), "PONG");
    assert_eq!(cli(&p, &["PING", "hi"]), "hi");
    assert_eq!(cli(&p, &["ECHO", "hello world"]), "hello world");
}

#[test]
fn select_accepts_only_database_0() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["SELECT", "0"]), "OK");
    assert!(cli(&p, &["SELECT", "1"]).starts_with("ERR"));
}

#[test]
fn set_then_get_returns_the_value_and_exists_counts_present_keys() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["SET", "get:k1", "v1"]), "OK");
    assert_eq!(cli(&p, &["GET", "get:k1"]), "v1");
    assert_eq!(cli(&p, &["GET", "missing"]), "");
    assert_eq!(cli(&p, &["EXISTS", "get:k1", "missing", "get:k1"]), "2");
}

#[test]
fn set_nx_writes_only_absent_keys_and_set_xx_only_present_ones() {
    let (_turn, _ob, p) = shared_proxy();
    // NX / XX through check_and_set.
    assert_eq!(cli(&p, &["SET", "nxxx:k1", "v1"]), "OK");
    assert_eq!(cli(&p, &["SET", "nxxx:k1", "other", "NX"]), "");
    assert_eq!(cli(&p, &["GET", "nxxx:k1"]), "v1");
    assert_eq!(cli(&p, &["SET", "nxxx:nx", "first", "NX"]), "OK");
    assert_eq!(cli(&p, &["SET", "nxxx:absent", "x", "XX"]), "");
    assert_eq!(cli(&p, &["GET", "nxxx:absent"]), "");
    assert_eq!(cli(&p, &["SET", "nxxx:k1", "v2", "XX"]), "OK");
    assert_eq!(cli(&p, &["GET", "nxxx:k1"]), "v2");
}

#[test]
fn ttl_and_pttl_report_the_time_left_or_minus_one_or_minus_two() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["SET", "ttl:k1", "v1"]), "OK");
    assert_eq!(cli(&p, &["TTL", "ttl:k1"]), "-1");
    assert_eq!(cli(&p, &["TTL", "missing"]), "-2");
    assert_eq!(cli(&p, &["PTTL", "missing"]), "-2");
    assert_eq!(cli(&p, &["SET", "ttl:t", "v", "EX", "100"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "ttl:t"]).parse().unwrap();
    assert!((95..=100).contains(&ttl), "{ttl}");
    let pttl: i64 = cli(&p, &["PTTL", "ttl:t"]).parse().unwrap();
    assert!((95_000..=100_000).contains(&pttl), "{pttl}");
    assert_eq!(cli(&p, &["SET", "ttl:px", "v", "PX", "1500"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "ttl:px"]).parse().unwrap();
    assert!(
        (1..=2).contains(&ttl),
        "PX rounds up to whole seconds: {ttl}"
    );
    assert_eq!(cli(&p, &["SETEX", "ttl:se", "50", "v"]), "OK");
    let ttl: i64 = cli(&p, &["TTL", "ttl:se"]).parse().unwrap();
    assert!((45..=50).contains(&ttl), "{ttl}");
}

#[test]
fn expire_sets_the_ttl_of_a_present_key_and_keeps_its_value() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["SET", "expire:k1", "v2"]), "OK");
    assert_eq!(cli(&p, &["EXPIRE", "expire:k1", "200"]), "1");
    let ttl: i64 = cli(&p, &["TTL", "expire:k1"]).parse().unwrap();
    assert!((195..=200).contains(&ttl), "{ttl}");
    assert_eq!(
        cli(&p, &["GET", "expire:k1"]),
        "v2",
        "EXPIRE keeps the value"
    );
    assert_eq!(cli(&p, &["EXPIRE", "missing", "10"]), "0");
}

#[test]
fn a_key_set_with_setex_expires_after_its_ttl() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["PSETEX", "expiry:pse", "1000", "v"]), "OK");
    assert_eq!(cli(&p, &["SETEX", "expiry:short", "1", "v"]), "OK");
    wait_until("SETEX 1 expired", Duration::from_secs(30), || {
        match cli(&p, &["GET", "expiry:short"]) {
            v if v.is_empty() => Ok(()),
            v => Err(format!("GET returns {v:?}")),
        }
    });
    assert_eq!(cli(&p, &["GET", "expiry:short"]), "", "expired");
    assert_eq!(cli(&p, &["TTL", "expiry:short"]), "-2");
}

#[test]
fn set_refuses_a_zero_expiry_and_nx_with_xx() {
    let (_turn, _ob, p) = shared_proxy();
    assert!(cli(&p, &["SET", "bad", "v", "EX", "0"]).starts_with("ERR invalid expire time"));
    assert!(cli(&p, &["SET", "bad", "v", "NX", "XX"]).starts_with("ERR syntax error"));
}

#[test]
fn incr_and_decr_count_and_refuse_non_integers() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["INCR", "incr:n"]), "1");
    assert_eq!(cli(&p, &["INCRBY", "incr:n", "41"]), "42");
    assert_eq!(cli(&p, &["DECR", "incr:n"]), "41");
    assert_eq!(cli(&p, &["DECRBY", "incr:n", "40"]), "1");
    assert_eq!(cli(&p, &["SET", "incr:word", "abc"]), "OK");
    assert_eq!(
        cli(&p, &["INCR", "incr:word"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        cli(&p, &["INCRBY", "incr:n", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cli(&p, &["GET", "incr:word"]), "abc");
}

#[test]
fn mset_mget_and_del_work_on_several_keys_and_count_what_they_found() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["MSET", "m:1", "a", "m:2", "b", "m:3", "c"]), "OK");
    assert_eq!(cli(&p, &["MGET", "m:1", "nope", "m:3"]), "a\n\nc");
    assert_eq!(cli(&p, &["DEL", "m:1", "m:2", "nope"]), "2");
    assert_eq!(cli(&p, &["DEL", "m:1"]), "0");
    assert_eq!(cli(&p, &["MGET", "m:1", "m:2", "m:3"]), "\n\nc");
}

#[test]
fn start_up_probes_of_tools_and_unsupported_commands_get_redis_answers() {
    let (_turn, _ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["CONFIG", "GET", "appendonly"]), "appendonly\nno");
    assert!(cli(&p, &["COMMAND"]).starts_with("ERR COMMAND is not supported"));
    assert!(cli(&p, &["HELLO", "3"]).starts_with("NOPROTO"));
    assert_eq!(cli(&p, &["FLUSHALL"]), "ERR unknown command 'FLUSHALL'");
    assert_eq!(
        cli(&p, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
}

#[test]
fn a_value_over_the_one_mib_write_limit_is_refused() {
    let (_turn, _ob, p) = shared_proxy();
    // A value over Pegasus's 1 MiB write limit is refused, the connection stays usable.
    let big = "x".repeat((1 << 20) + 100);
    let out = cli_stdin(&p, &["-x", "SET", "big"], big.as_bytes());
    assert!(
        out.starts_with("ERR internal error") && out.contains("ERR_INVALID_DATA"),
        "{out}"
    );
}

#[test]
fn what_the_proxy_writes_is_the_tables_data_for_the_rust_client() {
    let (_turn, ob, p) = shared_proxy();
    assert_eq!(cli(&p, &["SET", "client:k1", "v2"]), "OK");
    // The data is the table's: the Rust client sees it (hash key = Redis key, sort key "").
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = ob.client().open_table("temp").await.unwrap();
        assert_eq!(
            t.get(b"client:k1", b"").await.unwrap().as_deref(),
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
    let refused_after = started.elapsed();
    eprintln!("the client over maxclients was refused and closed after {refused_after:?}");
    assert_eq!(
        String::from_utf8_lossy(&all),
        "-ERR max number of clients reached\r\n"
    );
    // Microseconds when measured; a proxy that did not close would leave the read to its
    // 5 s timeout.
    assert!(
        refused_after < Duration::from_secs(2),
        "refused only after {refused_after:?}"
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
