//! The meta service over real TCP on 127.0.0.1: table DDL through the official meta RPCs
//! (driven by our Rust client), partition assignment and failover driven by beacons and
//! proposals to scripted replica servers, Raft between three metas, restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pegasus_client::{Client, ClientConfig};
use pegasus_meta::config::MetaServerConfig;
use pegasus_meta::protocol::FailureDetectorConfig;
use pegasus_meta::server::{MetaOptions, MetaServer};
use pegasus_proto::meta::*;
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse, RpcAddress};
use support::{create, free_addr, list, wait_alive, FakeNode};
use tempfile::TempDir;

struct Metas {
    servers: Vec<Option<Arc<MetaServer>>>,
    addrs: Vec<SocketAddr>,
    config: MetaServerConfig,
    dir: TempDir,
}

impl Metas {
    async fn start(n: usize, tweak: impl Fn(&mut MetaServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let mut config = MetaServerConfig {
            server_list: addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            min_live_node_count_for_unfreeze: 1,
            ..MetaServerConfig::default()
        };
        tweak(&mut config);
        let mut m = Self {
            servers: Vec::new(),
            addrs,
            config,
            dir,
        };
        for i in 0..n {
            let s = m.start_one(i).await;
            m.servers.push(Some(s));
        }
        m
    }

    async fn start_one(&self, i: usize) -> Arc<MetaServer> {
        let mut config = self.config.clone();
        config.data_dir = self.dir.path().join(format!("meta{i}"));
        MetaServer::start(MetaOptions {
            config,
            fd: FailureDetectorConfig::default(),
            listen: self.addrs[i],
            admin: None,
            network: Default::default(),
        })
        .await
        .unwrap()
    }

    async fn stop(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.shutdown().await;
        }
    }

    async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let s = self.start_one(i).await;
        self.servers[i] = Some(s);
    }

    fn leader_index(&self) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.is_ready_leader()))
    }

    async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(i) = self.leader_index() {
                return i;
            }
            assert!(Instant::now() < deadline, "no meta leader within 15 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self) -> Client {
        let mut c = ClientConfig::new(self.addrs.clone());
        c.meta_query_timeout = Duration::from_secs(10);
        Client::new(c)
    }
}

async fn nodes(metas: &Metas, n: usize) -> Vec<FakeNode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(FakeNode::start(metas.addrs.clone(), 300).await);
    }
    out
}

async fn drop_app(client: &Client, name: &str, success_if_not_exist: bool) -> ErrorCode {
    match client
        .meta(MetaRequest::DropApp(DropAppRequest {
            app_name: name.into(),
            options: DropAppOptions {
                success_if_not_exist,
                reserve_seconds: None,
            },
        }))
        .await
        .unwrap()
    {
        MetaResponse::DropApp(r) => r.err,
        other => panic!("{other:?}"),
    }
}

async fn recall(client: &Client, app_id: i32, new_name: &str) -> RecallAppResponse {
    match client
        .meta(MetaRequest::RecallApp(RecallAppRequest {
            app_id,
            new_app_name: new_name.into(),
        }))
        .await
        .unwrap()
    {
        MetaResponse::RecallApp(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn envs(client: &Client, req: UpdateAppEnvRequest) -> UpdateAppEnvResponse {
    match client.meta(MetaRequest::UpdateAppEnv(req)).await.unwrap() {
        MetaResponse::UpdateAppEnv(r) => r,
        other => panic!("{other:?}"),
    }
}

fn healthy(r: &QueryCfgResponse, replicas: usize) -> bool {
    r.err == ErrorCode::Ok
        && r.partitions.len() == r.partition_count as usize
        && r.partitions
            .iter()
            .all(|p| p.primary.is_valid() && p.secondaries.len() + 1 == replicas && p.ballot >= 1)
}

async fn wait_healthy(client: &Client, table: &str, replicas: usize) -> QueryCfgResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client.query_config(table).await.unwrap();
        if healthy(&r, replicas) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{table} not healthy within 20 s: {:?}",
            r.partitions
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_table_gets_evenly_placed_replicas_and_a_wire_compatible_config() {
    let metas = Metas::start(1, |_| {}).await;
    let _nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;

    let r = create(&client, "temp", 8, 3).await;
    assert_eq!(r.err, ErrorCode::Ok);
    assert_eq!(r.appid, 1);
    let cfg = wait_healthy(&client, "temp", 3).await;
    assert_eq!(cfg.app_id, 1);
    assert_eq!(cfg.partition_count, 8);
    assert!(cfg.is_stateful);
    for (i, p) in cfg.partitions.iter().enumerate() {
        assert_eq!(p.pid.pidx, i as i32, "partitions in index order");
        assert_eq!(p.pid.app_id, 1);
        assert_eq!(p.max_replica_count, 3);
    }
    // Evenly placed: 8 primaries over 3 nodes → 2 or 3 each.
    let mut primaries: BTreeMap<RpcAddress, usize> = BTreeMap::new();
    for p in &cfg.partitions {
        *primaries.entry(p.primary).or_default() += 1;
    }
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    assert!(
        primaries.values().all(|n| (2..=3).contains(n)),
        "{primaries:?}"
    );

    // A subset of indices, as Java asks for.
    let sub = match client
        .meta(MetaRequest::QueryConfig(QueryCfgRequest {
            app_name: "temp".into(),
            partition_indices: vec![5, 2],
        }))
        .await
        .unwrap()
    {
        MetaResponse::QueryConfig(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sub.partitions
            .iter()
            .map(|p| p.pid.pidx)
            .collect::<Vec<_>>(),
        vec![5, 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_errors_carry_pegasus_error_codes() {
    let metas = Metas::start(1, |_| {}).await;
    let _nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;

    for bad in ["", "a-b", "with space", "t/x", &"x".repeat(300)] {
        assert_eq!(
            create(&client, bad, 4, 3).await.err,
            ErrorCode::InvalidParameters,
            "name {bad:?}"
        );
    }
    for bad in [0, -1, 3, 6, 1 << 17] {
        assert_eq!(
            create(&client, "t", bad, 3).await.err,
            ErrorCode::InvalidParameters,
            "partitions {bad}"
        );
    }
    for bad in [0, 6, -3] {
        assert_eq!(
            create(&client, "t", 4, bad).await.err,
            ErrorCode::InvalidParameters,
            "replicas {bad}"
        );
    }
    // More replicas than live replica servers.
    assert_eq!(
        create(&client, "t", 4, 4).await.err,
        ErrorCode::InvalidParameters
    );

    let first = create(&client, "t.1:x_Y", 4, 3).await;
    assert_eq!(first.err, ErrorCode::Ok);
    assert_eq!(
        create(&client, "t.1:x_Y", 4, 3).await.err,
        ErrorCode::AppExist
    );
    let again = match client
        .meta(MetaRequest::CreateApp(CreateAppRequest {
            app_name: "t.1:x_Y".into(),
            options: CreateAppOptions {
                partition_count: 4,
                replica_count: 3,
                success_if_exist: true,
                ..CreateAppOptions::default()
            },
        }))
        .await
        .unwrap()
    {
        MetaResponse::CreateApp(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((again.err, again.appid), (ErrorCode::Ok, first.appid));

    let q = client.query_config("nope").await.unwrap();
    assert_eq!(q.err, ErrorCode::ObjectNotFound);
    assert_eq!(
        drop_app(&client, "nope", false).await,
        ErrorCode::AppNotExist
    );
    assert_eq!(drop_app(&client, "nope", true).await, ErrorCode::Ok);
    assert_eq!(recall(&client, 999, "").await.err, ErrorCode::AppNotExist);
    assert_eq!(
        recall(&client, first.appid, "").await.err,
        ErrorCode::AppExist,
        "not dropped"
    );

    // Envs: validation, set, delete, clear by prefix.
    let set = |keys: &[&str], values: &[&str]| UpdateAppEnvRequest {
        app_name: "t.1:x_Y".into(),
        op: AppEnvOperation::Set,
        keys: Some(keys.iter().map(|s| s.to_string()).collect()),
        values: Some(values.iter().map(|s| s.to_string()).collect()),
        clear_prefix: None,
    };
    let r = envs(&client, set(&["no.such.env"], &["1"])).await;
    assert_eq!(r.err, ErrorCode::InvalidParameters);
    assert!(r.hint_message.contains("no.such.env"), "{}", r.hint_message);
    assert_eq!(
        envs(&client, set(&["default_ttl"], &["-5"])).await.err,
        ErrorCode::InvalidParameters
    );
    assert_eq!(
        envs(&client, set(&["default_ttl"], &[])).await.err,
        ErrorCode::InvalidParameters
    );
    // A known env nothing acts on yet is refused, even next to a supported one.
    let r = envs(
        &client,
        set(
            &["default_ttl", "manual_compact.disabled"],
            &["3600", "true"],
        ),
    )
    .await;
    assert_eq!(r.err, ErrorCode::InvalidParameters);
    assert!(
        r.hint_message.contains("`manual_compact.disabled`")
            && r.hint_message.contains("not supported yet"),
        "{}",
        r.hint_message
    );
    let apps = list(&client, AppStatus::Available).await;
    let app = apps.iter().find(|a| a.app_name == "t.1:x_Y").unwrap();
    assert!(app.envs.is_empty(), "nothing set: {:?}", app.envs);
    let r = envs(&client, set(&["default_ttl"], &["3600"])).await;
    assert_eq!(r.err, ErrorCode::Ok, "{}", r.hint_message);
    let mut unknown = set(&["default_ttl"], &["1"]);
    unknown.app_name = "nope".into();
    assert_eq!(envs(&client, unknown).await.err, ErrorCode::AppNotExist);
    let apps = list(&client, AppStatus::Available).await;
    let app = apps.iter().find(|a| a.app_name == "t.1:x_Y").unwrap();
    assert_eq!(
        app.envs,
        BTreeMap::from([("default_ttl".to_string(), "3600".to_string())])
    );
    let r = envs(
        &client,
        UpdateAppEnvRequest {
            app_name: "t.1:x_Y".into(),
            op: AppEnvOperation::Del,
            keys: Some(vec!["default_ttl".into()]),
            ..UpdateAppEnvRequest::default()
        },
    )
    .await;
    assert_eq!(r.err, ErrorCode::Ok);
    assert_eq!(
        envs(&client, set(&["default_ttl"], &["60"])).await.err,
        ErrorCode::Ok
    );
    // Clear by a prefix that does not match keeps the env; by one that does removes it.
    for (prefix, left) in [("manual_compact.", 1), ("default", 0)] {
        let r = envs(
            &client,
            UpdateAppEnvRequest {
                app_name: "t.1:x_Y".into(),
                op: AppEnvOperation::Clear,
                clear_prefix: Some(prefix.into()),
                ..UpdateAppEnvRequest::default()
            },
        )
        .await;
        assert_eq!(r.err, ErrorCode::Ok);
        let apps = list(&client, AppStatus::Available).await;
        let app = apps.iter().find(|a| a.app_name == "t.1:x_Y").unwrap();
        assert_eq!(
            app.envs.len(),
            left,
            "after clear {prefix:?}: {:?}",
            app.envs
        );
    }
    // Envs at creation are checked the same way (the response has no hint).
    let with_envs = |env: &str, value: &str| {
        MetaRequest::CreateApp(CreateAppRequest {
            app_name: "with_envs".into(),
            options: CreateAppOptions {
                partition_count: 1,
                replica_count: 3,
                app_type: "pegasus".into(),
                is_stateful: true,
                envs: BTreeMap::from([(env.to_string(), value.to_string())]),
                ..CreateAppOptions::default()
            },
        })
    };
    for (env, value, want) in [
        (
            "replica.deny_client_request",
            "reconfig*write",
            ErrorCode::InvalidParameters,
        ),
        ("no.such.env", "1", ErrorCode::InvalidParameters),
        ("default_ttl", "-1", ErrorCode::InvalidParameters),
        ("default_ttl", "600", ErrorCode::Ok),
    ] {
        match client.meta(with_envs(env, value)).await.unwrap() {
            MetaResponse::CreateApp(r) => assert_eq!(r.err, want, "{env}={value}"),
            other => panic!("{other:?}"),
        }
    }
    let apps = list(&client, AppStatus::Available).await;
    let app = apps.iter().find(|a| a.app_name == "with_envs").unwrap();
    assert_eq!(
        app.envs,
        BTreeMap::from([("default_ttl".to_string(), "600".to_string())])
    );

    // Max replica count.
    let get = match client
        .meta(MetaRequest::GetMaxReplicaCount(GetMaxReplicaCountRequest {
            app_name: "t.1:x_Y".into(),
        }))
        .await
        .unwrap()
    {
        MetaResponse::GetMaxReplicaCount(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((get.err, get.max_replica_count), (ErrorCode::Ok, 3));
    let set_count = |n: i32| {
        MetaRequest::SetMaxReplicaCount(SetMaxReplicaCountRequest {
            app_name: "t.1:x_Y".into(),
            max_replica_count: n,
        })
    };
    match client.meta(set_count(4)).await.unwrap() {
        MetaResponse::SetMaxReplicaCount(r) => assert_eq!(r.err, ErrorCode::InvalidParameters),
        other => panic!("{other:?}"),
    }
    match client.meta(set_count(2)).await.unwrap() {
        MetaResponse::SetMaxReplicaCount(r) => {
            assert_eq!((r.err, r.old_max_replica_count), (ErrorCode::Ok, 3))
        }
        other => panic!("{other:?}"),
    }
    // The guardian removes the now-redundant secondary of every partition.
    wait_healthy(&client, "t.1:x_Y", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_table_is_hidden_and_recall_brings_back_the_same_id_and_partitions() {
    let metas = Metas::start(1, |_| {}).await;
    let _nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;

    let id = create(&client, "keep", 4, 3).await.appid;
    let before = wait_healthy(&client, "keep", 3).await;
    assert_eq!(drop_app(&client, "keep", false).await, ErrorCode::Ok);
    assert_eq!(
        client.query_config("keep").await.unwrap().err,
        ErrorCode::ObjectNotFound
    );
    let dropped = list(&client, AppStatus::Dropped).await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        (dropped[0].app_id, dropped[0].app_name.as_str()),
        (id, "keep")
    );
    assert!(dropped[0].expire_second - dropped[0].drop_second == 604_800);
    assert!(list(&client, AppStatus::Available).await.is_empty());

    // The name is free while the table is dropped; recall then needs a new name.
    let other = create(&client, "keep", 4, 3).await;
    assert_eq!(other.err, ErrorCode::Ok);
    assert_ne!(other.appid, id, "table ids are never reused");
    assert_eq!(recall(&client, id, "").await.err, ErrorCode::AppExist);
    let r = recall(&client, id, "keep_old").await;
    assert_eq!(r.err, ErrorCode::Ok);
    assert_eq!((r.info.app_id, r.info.app_name.as_str()), (id, "keep_old"));
    let after = client.query_config("keep_old").await.unwrap();
    assert_eq!(after.app_id, id);
    // Same partitions on the same replica servers: their data is found again.
    let members = |r: &QueryCfgResponse| {
        r.partitions
            .iter()
            .map(|p| (p.primary, p.secondaries.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(members(&after), members(&before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_is_freezed_with_too_few_live_nodes_and_by_function_level() {
    let metas = Metas::start(1, |c| c.min_live_node_count_for_unfreeze = 3).await;
    let client = metas.client();
    let mut two = nodes(&metas, 2).await;
    wait_alive(&client, 2).await;
    assert_eq!(
        create(&client, "t", 4, 1).await.err,
        ErrorCode::StateFreezed
    );
    let third = nodes(&metas, 1).await;
    wait_alive(&client, 3).await;
    assert_eq!(create(&client, "t", 4, 3).await.err, ErrorCode::Ok);

    let level = |l| MetaRequest::ControlMeta(MetaControlRequest { level: l });
    match client
        .meta(level(MetaFunctionLevel::Freezed))
        .await
        .unwrap()
    {
        MetaResponse::ControlMeta(r) => {
            assert_eq!(
                (r.err, r.old_level),
                (ErrorCode::Ok, MetaFunctionLevel::Steady)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        create(&client, "u", 4, 3).await.err,
        ErrorCode::StateFreezed
    );
    // Dropping is still allowed when freezed, as in Pegasus.
    assert_eq!(drop_app(&client, "t", false).await, ErrorCode::Ok);
    match client
        .meta(level(MetaFunctionLevel::Invalid))
        .await
        .unwrap()
    {
        MetaResponse::ControlMeta(r) => {
            assert_eq!(r.old_level, MetaFunctionLevel::Freezed, "query")
        }
        other => panic!("{other:?}"),
    }
    match client.meta(level(MetaFunctionLevel::Steady)).await.unwrap() {
        MetaResponse::ControlMeta(r) => assert_eq!(r.err, ErrorCode::Ok),
        other => panic!("{other:?}"),
    }
    // No load balancer: lively is refused and the level stays steady.
    match client.meta(level(MetaFunctionLevel::Lively)).await.unwrap() {
        MetaResponse::ControlMeta(r) => assert_eq!(
            (r.err, r.old_level),
            (ErrorCode::InvalidParameters, MetaFunctionLevel::Steady)
        ),
        other => panic!("{other:?}"),
    }
    match client
        .meta(level(MetaFunctionLevel::Invalid))
        .await
        .unwrap()
    {
        MetaResponse::ControlMeta(r) => assert_eq!(r.old_level, MetaFunctionLevel::Steady),
        other => panic!("{other:?}"),
    }
    assert_eq!(create(&client, "u", 4, 3).await.err, ErrorCode::Ok);
    two.clear();
    drop(third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_is_replaced_by_a_secondary_and_listed_unalive() {
    // Re-replicate one second after a member drops (the default waits 5 minutes for it).
    let metas = Metas::start(1, |c| c.replica_assign_delay_ms_for_dropouts = 1_000).await;
    let mut nodes = nodes(&metas, 4).await;
    let client = metas.client();
    wait_alive(&client, 4).await;
    create(&client, "t", 4, 3).await;
    let before = wait_healthy(&client, "t", 3).await;
    let victim_addr = before.partitions[0].primary;
    let victim = nodes
        .iter_mut()
        .find(|n| RpcAddress::from_socket_addr(n.addr) == victim_addr)
        .unwrap();
    assert!(victim.has_lease(), "a live node holds a lease");
    victim.kill();
    let killed = Instant::now();
    let mut new_primary = None;
    let mut seen = None;
    while killed.elapsed() < Duration::from_secs(30) {
        let r = client.query_config("t").await.unwrap();
        let p = &r.partitions[0];
        if p.primary.is_valid() && p.primary != victim_addr {
            new_primary = Some((killed.elapsed(), p.clone()));
            break;
        }
        seen = Some(p.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (took, p) = new_primary.unwrap_or_else(|| panic!("no new primary within 30 s: {seen:?}"));
    eprintln!("new primary after {took:?}");
    // 3.5 s when measured (meta's 3.5 s grace after the last beacon); a loaded machine adds
    // to it. The bound catches a failover that waits for something else, such as Pegasus's
    // 22 s grace.
    assert!(took <= Duration::from_secs(15), "failover took {took:?}");
    assert!(p.ballot > before.partitions[0].ballot);
    assert!(
        before.partitions[0].secondaries.contains(&p.primary),
        "a secondary was promoted"
    );
    // Every partition heals back to three replicas on the surviving nodes.
    let healed = wait_healthy(&client, "t", 3).await;
    for part in &healed.partitions {
        assert_ne!(part.primary, victim_addr);
        assert!(!part.secondaries.contains(&victim_addr));
    }
    match client
        .meta(MetaRequest::ListNodes(ListNodesRequest {
            status: NodeStatus::Unalive,
        }))
        .await
        .unwrap()
    {
        MetaResponse::ListNodes(r) => {
            assert_eq!(
                r.infos.iter().map(|i| i.node).collect::<Vec<_>>(),
                vec![victim_addr]
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_clients_to_the_leader() {
    let metas = Metas::start(3, |_| {}).await;
    let leader = metas.wait_leader().await;
    let follower = (leader + 1) % 3;
    let f = metas.servers[follower].as_ref().unwrap();
    // Wait until the follower knows who leads.
    let deadline = Instant::now() + Duration::from_secs(15);
    while f.leader() != Some(metas.addrs[leader]) {
        assert!(
            Instant::now() < deadline,
            "the follower does not know the leader {} within 15 s: it names {:?}",
            metas.addrs[leader],
            f.leader()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = f.query_config(&QueryCfgRequest {
        app_name: "any".into(),
        partition_indices: vec![],
    });
    assert_eq!(r.err, ErrorCode::ForwardToOthers);
    assert_eq!(
        r.partitions[0].primary.to_socket_addr(),
        Some(metas.addrs[leader])
    );

    // A client that knows only the follower reaches the leader through the hint.
    let _nodes = nodes(&metas, 3).await;
    let client = Client::new(ClientConfig::new([metas.addrs[follower]]));
    wait_alive(&client, 3).await;
    assert_eq!(
        create(&client, "via_follower", 2, 3).await.err,
        ErrorCode::Ok
    );
    wait_healthy(&client, "via_follower", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_metas_keep_acknowledged_ddl_across_leader_loss_and_full_restart() {
    let mut metas = Metas::start(3, |_| {}).await;
    let _nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;
    let mut acked = BTreeMap::new();
    for i in 0..3 {
        let r = create(&client, &format!("t{i}"), 2, 3).await;
        assert_eq!(r.err, ErrorCode::Ok);
        acked.insert(format!("t{i}"), r.appid);
    }
    let leader = metas.wait_leader().await;
    metas.stop(leader).await;
    // The new leader knows a node is alive once it has beaconed it.
    wait_alive(&client, 3).await;
    for i in 3..6 {
        let r = create(&client, &format!("t{i}"), 2, 3).await;
        assert_eq!(
            r.err,
            ErrorCode::Ok,
            "the two survivors elect a leader and accept DDL"
        );
        acked.insert(format!("t{i}"), r.appid);
    }
    assert_eq!(drop_app(&client, "t0", false).await, ErrorCode::Ok);
    metas.restart(leader).await;
    // Every meta down at once, then all back: the state comes from their disks.
    for i in 0..3 {
        metas.stop(i).await;
    }
    for i in 0..3 {
        metas.restart(i).await;
    }
    wait_alive(&client, 3).await;
    let apps = list(&client, AppStatus::Invalid).await;
    let got: BTreeMap<String, (i32, AppStatus)> = apps
        .iter()
        .map(|a| (a.app_name.clone(), (a.app_id, a.status)))
        .collect();
    for (name, id) in &acked {
        let status = if name == "t0" {
            AppStatus::Dropped
        } else {
            AppStatus::Available
        };
        assert_eq!(got.get(name), Some(&(*id, status)), "{name}: {got:?}");
    }
    // The ids continue after the restart; nothing is reused.
    let next = create(&client, "after_restart", 2, 3).await;
    assert_eq!(next.err, ErrorCode::Ok);
    assert!(acked.values().all(|id| *id < next.appid));
}

async fn beacon(
    meta: SocketAddr,
    node: SocketAddr,
    start_ms: u64,
) -> pegasus_meta::protocol::BeaconAck {
    use pegasus_meta::protocol::{names, node_of, Beacon};
    let session = pegasus_rpc::Session::new(meta, 1 << 20);
    let b = Beacon {
        node: node_of(node).unwrap(),
        sent_ms: 1,
        start_ms,
        replicas: Vec::new(),
        disk: Default::default(),
    };
    pegasus_rpc::internal::call(&session, names::BEACON, &b, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_keeps_restarting_is_held_back() {
    let metas = Metas::start(1, |c| c.max_succssive_unstable_restart = 2).await;
    metas.wait_leader().await;
    let node: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let ack = beacon(metas.addrs[0], node, 1000).await;
    assert!(ack.is_leader && ack.lease_ms > 0, "{ack:?}");
    // Two restarts within stable_rs_min_running_seconds: unstable.
    assert!(beacon(metas.addrs[0], node, 2000).await.lease_ms > 0);
    let held = beacon(metas.addrs[0], node, 3000).await;
    assert_eq!(held.lease_ms, 0, "no lease for a flapping node: {held:?}");
    assert_eq!(
        beacon(metas.addrs[0], node, 3000).await.lease_ms,
        0,
        "still held back"
    );
    // Another node is unaffected.
    let other: SocketAddr = "127.0.0.1:2".parse().unwrap();
    assert!(beacon(metas.addrs[0], other, 1000).await.lease_ms > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_sync_answers_members_and_collects_replicas_of_purged_tables() {
    use pegasus_meta::protocol::{
        names, node_of, ConfigSyncRequest, ConfigSyncResponse, ReplicaReport,
    };
    let metas = Metas::start(1, |_| {}).await;
    let nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;
    let keep = create(&client, "keep", 2, 3).await.appid;
    let gone = create(&client, "gone", 2, 3).await.appid;
    wait_healthy(&client, "keep", 3).await;
    wait_healthy(&client, "gone", 3).await;
    match client
        .meta(MetaRequest::DropApp(DropAppRequest {
            app_name: "gone".into(),
            options: DropAppOptions {
                success_if_not_exist: false,
                reserve_seconds: Some(1),
            },
        }))
        .await
        .unwrap()
    {
        MetaResponse::DropApp(r) => assert_eq!(r.err, ErrorCode::Ok),
        other => panic!("{other:?}"),
    }
    let report = |app_id, pidx| ReplicaReport {
        gpid: pegasus_core::ids::Gpid::new(app_id, pidx),
        ballot: 1,
        last_committed: 0,
        last_prepared: 0,
        fresh: false,
    };
    let req = ConfigSyncRequest {
        node: node_of(nodes[0].addr).unwrap(),
        replicas: vec![report(keep, 0), report(gone, 1)],
    };
    let session = pegasus_rpc::Session::new(metas.addrs[0], 1 << 20);
    let sync = |req: ConfigSyncRequest| {
        let session = session.clone();
        async move {
            pegasus_rpc::internal::call::<_, ConfigSyncResponse>(
                &session,
                names::CONFIG_SYNC,
                &req,
                Duration::from_secs(5),
            )
            .await
            .unwrap()
        }
    };
    // Within the reserve time the dropped table is answered as dropped, not collected.
    let r = sync(req.clone()).await;
    assert!(r.gc.is_empty());
    let dropped: Vec<_> = r.partitions.iter().filter(|p| p.app.dropped).collect();
    assert!(dropped.iter().all(|p| p.app.app_id == gone));
    assert!(r
        .partitions
        .iter()
        .filter(|p| p.app.app_id == keep)
        .all(|p| p.config.is_member(req.node)));
    assert_eq!(
        r.partitions.iter().filter(|p| p.app.app_id == keep).count(),
        2,
        "both partitions of a 3-node table"
    );
    // After the reserve time meta purges the table and tells the node to collect its replica.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = sync(req.clone()).await;
        if r.gc == vec![pegasus_core::ids::Gpid::new(gone, 1)] {
            assert!(r.partitions.iter().all(|p| p.app.app_id == keep));
            break;
        }
        assert!(Instant::now() < deadline, "not collected: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        recall(&client, gone, "").await.err,
        ErrorCode::AppNotExist,
        "purged for good"
    );
}

/// `GET path` on a meta's port: the body of its answer.
async fn http_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

async fn cluster_info(client: &Client) -> BTreeMap<String, String> {
    match client
        .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
        .await
        .unwrap()
    {
        MetaResponse::ClusterInfo(r) => r.keys.into_iter().zip(r.values).collect(),
        other => panic!("{other:?}"),
    }
}

/// Polls `check` every 100 ms for up to 20 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_moves_primaries_away_keeps_two_copies_and_fills_again_with_space() {
    use pegasus_meta::protocol::DiskReport;
    let metas = Metas::start(1, |_| {}).await;
    let nodes = nodes(&metas, 3).await;
    let client = metas.client();
    wait_alive(&client, 3).await;
    create(&client, "before", 4, 3).await;
    let cfg = wait_healthy(&client, "before", 3).await;
    let full = &nodes[0];
    let full_addr = RpcAddress::from_socket_addr(full.addr);
    assert!(cfg.partitions.iter().any(|p| p.primary == full_addr));

    full.set_disk(DiskReport {
        capacity_bytes: 200 << 20,
        available_bytes: 1 << 20,
        insufficient: true,
    });
    // The acks tell every node which disk is short.
    eventually("acks list the full node", async || {
        nodes
            .iter()
            .all(|n| n.acked_disk_insufficient() == vec![full.node])
            .then_some(())
    })
    .await;
    // Its primaries move to copies with space; no copy is lost.
    let moved = eventually("primaries leave the full node", async || {
        let r = client.query_config("before").await.unwrap();
        (healthy(&r, 3) && r.partitions.iter().all(|p| p.primary != full_addr)).then_some(r)
    })
    .await;
    // ... and then stay put: a second look after a few ticks finds the same ballots.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = client.query_config("before").await.unwrap();
    assert_eq!(
        moved
            .partitions
            .iter()
            .map(|p| p.ballot)
            .collect::<Vec<_>>(),
        later
            .partitions
            .iter()
            .map(|p| p.ballot)
            .collect::<Vec<_>>(),
        "no churn"
    );

    // A new table is placed on the nodes with space and kept at two copies, and says so.
    create(&client, "during", 2, 3).await;
    eventually(
        "the new table has two copies off the full node",
        async || {
            let r = client.query_config("during").await.unwrap();
            r.partitions
                .iter()
                .all(|p| p.primary.is_valid() && p.primary != full_addr && p.secondaries.len() == 1)
                .then_some(())
        },
    )
    .await;
    let during = client.query_config("during").await.unwrap();
    assert!(during
        .partitions
        .iter()
        .all(|p| !p.secondaries.contains(&full_addr)));
    let app = http_json(metas.addrs[0], "/meta/app?name=during").await;
    for p in app["partitions"].as_array().unwrap() {
        assert_eq!(p["short_of_disk"], serde_json::Value::Bool(true), "{app}");
    }
    let app = http_json(metas.addrs[0], "/meta/app?name=before").await;
    for p in app["partitions"].as_array().unwrap() {
        assert_eq!(p["short_of_disk"], serde_json::Value::Bool(false), "{app}");
    }
    let info = cluster_info(&client).await;
    assert_eq!(info["disk_insufficient_nodes"], full.addr.to_string());
    assert_eq!(info["partitions_short_of_disk"], "2");
    let listed = http_json(metas.addrs[0], "/meta/nodes").await;
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == full.addr.to_string())
        .unwrap()
        .clone();
    assert_eq!(entry["disk_insufficient"], true, "{listed}");
    assert_eq!(entry["disk_available_bytes"], 1 << 20);
    assert_eq!(entry["disk_capacity_bytes"], 200 << 20);

    // Space returns: the node takes copies again by itself.
    full.set_disk(DiskReport {
        capacity_bytes: 200 << 20,
        available_bytes: 150 << 20,
        insufficient: false,
    });
    let healed = wait_healthy(&client, "during", 3).await;
    assert!(healed
        .partitions
        .iter()
        .all(|p| p.secondaries.contains(&full_addr)));
    eventually("nothing is short of disk", async || {
        let info = cluster_info(&client).await;
        (info["disk_insufficient_nodes"].is_empty() && info["partitions_short_of_disk"] == "0")
            .then_some(())
    })
    .await;
    // Each node learns it from its next beacon ack.
    eventually("every node's last ack lists no full disk", async || {
        nodes
            .iter()
            .all(|n| n.acked_disk_insufficient().is_empty())
            .then_some(())
    })
    .await;
}
