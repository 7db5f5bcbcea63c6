//! Three `pegasus meta` processes on 127.0.0.1: the leader is killed with SIGKILL while a
//! client keeps creating tables, then every meta is killed and restarted. No table whose
//! creation was acknowledged may be lost, and ids must survive.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

#[path = "../../pegasus-meta/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::{Client, ClientConfig};
use pegasus_proto::meta::{AppStatus, ClusterInfoRequest};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};
use support::{create, free_addr, list, wait_alive, wait_until, FakeNode};

struct MetaProcs {
    addrs: Vec<SocketAddr>,
    config: PathBuf,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

impl MetaProcs {
    fn new(dir: &Path, n: usize) -> Self {
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let list = addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let config = dir.join("meta.toml");
        std::fs::write(
            &config,
            format!(
                "[meta_server]\nserver_list = \"{list}\"\nmin_live_node_count_for_unfreeze = 1\n"
            ),
        )
        .unwrap();
        let mut m = Self {
            addrs,
            config,
            dir: dir.to_owned(),
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            m.spawn(i);
        }
        m
    }

    fn spawn(&mut self, i: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_pegasus"))
            .arg("meta")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.addrs[i].to_string())
            .arg("--data-dir")
            .arg(self.dir.join(format!("meta{i}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// SIGKILL, as `kill -9`.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn client(&self) -> Client {
        let mut c = ClientConfig::new(self.addrs.clone());
        c.meta_query_timeout = Duration::from_secs(10);
        Client::new(c)
    }
}

impl Drop for MetaProcs {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

async fn leader(client: &Client) -> SocketAddr {
    match client
        .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
        .await
        .unwrap()
    {
        MetaResponse::ClusterInfo(r) => {
            assert_eq!(r.err, ErrorCode::Ok);
            let i = r
                .keys
                .iter()
                .position(|k| k == "primary_meta_server")
                .unwrap();
            r.values[i].parse().unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ddl_survives_kill_9_of_the_leader_and_of_every_meta() {
    let dir = tempfile::tempdir().unwrap();
    let mut metas = MetaProcs::new(dir.path(), 3);
    let _nodes = [
        FakeNode::start(metas.addrs.clone(), 300).await,
        FakeNode::start(metas.addrs.clone(), 300).await,
        FakeNode::start(metas.addrs.clone(), 300).await,
    ];
    let client = metas.client();
    wait_alive(&client, 3).await;

    // A client creates tables back to back while the leader is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let creator = {
        let client = client.clone();
        let stop = stop.clone();
        let count = count.clone();
        tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let started = Instant::now();
            for i in 0..1000 {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let name = format!("c{i}");
                let r = tokio::time::timeout(Duration::from_secs(15), create(&client, &name, 1, 3))
                    .await;
                if let Ok(r) = r {
                    if r.err == ErrorCode::Ok {
                        acked.insert(name, r.appid);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            acked
        })
    };
    // Some tables are created under the first leader (scenario time: nothing is asserted
    // of it).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_leader = leader(&client).await;
    let victim = metas.addrs.iter().position(|a| *a == old_leader).unwrap();
    metas.kill(victim);
    let killed = Instant::now();
    let before_kill = count.load(Ordering::Relaxed);
    // Keep creating under the new leader until 20 more tables were acknowledged.
    wait_until(
        "creation goes on under the new leader",
        Duration::from_secs(45),
        async || match count.load(Ordering::Relaxed) {
            n if n >= before_kill + 20 => Ok(()),
            n => Err(format!("{before_kill} acked before the kill, {n} in all")),
        },
    )
    .await;
    eprintln!(
        "20 more tables acknowledged {:?} after the leader's kill",
        killed.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    let acked = creator.await.unwrap();
    let new_leader = leader(&client).await;
    assert_ne!(new_leader, old_leader, "a new leader was elected");
    assert!(
        acked.len() >= before_kill + 20,
        "creation goes on under the new leader: {before_kill} acked before the kill, {} in all",
        acked.len()
    );
    let check = |apps: Vec<pegasus_proto::meta::AppInfo>, when: &str| {
        let got: BTreeMap<String, i32> = apps
            .into_iter()
            .filter(|a| a.status == AppStatus::Available)
            .map(|a| (a.app_name, a.app_id))
            .collect();
        for (name, id) in &acked {
            assert_eq!(
                got.get(name),
                Some(id),
                "{when}: acked table {name} lost or changed"
            );
        }
    };
    check(
        list(&client, AppStatus::Invalid).await,
        "after the leader's kill",
    );
    eprintln!(
        "{} tables acked; leader {old_leader} killed, {new_leader} leads {:?} later",
        acked.len(),
        killed.elapsed()
    );

    // The killed meta comes back and catches up; then every meta is killed at once.
    metas.spawn(victim);
    // Scenario time: nothing is asserted of the catch-up (the other two hold every table).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        metas.kill(i);
    }
    for i in 0..3 {
        metas.spawn(i);
    }
    wait_alive(&client, 3).await;
    check(
        list(&client, AppStatus::Invalid).await,
        "after killing every meta",
    );
    // Partition configurations were kept too: every acked table still routes.
    let (name, id) = acked.iter().next().unwrap();
    let q = client.query_config(name).await.unwrap();
    assert_eq!(
        (q.err, q.app_id, q.partition_count),
        (ErrorCode::Ok, *id, 1)
    );
}
