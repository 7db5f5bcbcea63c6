//! Table envs and the meta function level against a real onebox, through the official meta
//! RPCs (Rust client) and `pegasus shell -e`: every env pegasus-rs does not act on yet is
//! refused with `ERR_INVALID_PARAMETERS` and a hint and changes nothing, the supported ones
//! (`default_ttl`, ...) are accepted (their effects on data are tested elsewhere), envs at table creation are refused the
//! same way, del / clear still work, and `lively` (no load balancer yet) is refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod onebox;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use onebox::{rt, shell, Onebox};
use pegasus_client::Client;
use pegasus_meta::envs::{Status, ENVS};
use pegasus_proto::meta::{
    AppEnvOperation, AppStatus, ListAppsRequest, MetaControlRequest, MetaFunctionLevel,
    UpdateAppEnvRequest, UpdateAppEnvResponse,
};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

async fn update(client: &Client, req: UpdateAppEnvRequest) -> UpdateAppEnvResponse {
    match client.meta(MetaRequest::UpdateAppEnv(req)).await.unwrap() {
        MetaResponse::UpdateAppEnv(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn set(client: &Client, kvs: &[(&str, &str)]) -> UpdateAppEnvResponse {
    update(
        client,
        UpdateAppEnvRequest {
            app_name: "temp".into(),
            op: AppEnvOperation::Set,
            keys: Some(kvs.iter().map(|(k, _)| k.to_string()).collect()),
            values: Some(kvs.iter().map(|(_, v)| v.to_string()).collect()),
            clear_prefix: None,
        },
    )
    .await
}

/// The envs meta holds for a table (`None`: no such available table).
async fn envs_of(client: &Client, table: &str) -> Option<BTreeMap<String, String>> {
    match client
        .meta(MetaRequest::ListApps(ListAppsRequest {
            status: AppStatus::Available,
            ..ListAppsRequest::default()
        }))
        .await
        .unwrap()
    {
        MetaResponse::ListApps(r) => {
            assert_eq!(r.err, ErrorCode::Ok);
            r.infos
                .into_iter()
                .find(|a| a.app_name == table)
                .map(|a| a.envs)
        }
        other => panic!("{other:?}"),
    }
}

fn assert_not_yet_hint(hint: &str, key: &str) {
    assert!(
        hint.contains(&format!(
            "env `{key}` is recognised but not supported yet by pegasus-rs"
        )) && hint.contains("it would have no effect"),
        "{hint}"
    );
}

/// Waits until a meta log holds `text` (the leader logs the reason of refusals whose
/// response has no hint field).
fn wait_meta_log(ob: &Onebox, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(ob.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("meta") && n.ends_with(".log"))
            })
            .any(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .contains(text)
            });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{text:?} not in the meta logs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn envs_pegasus_rs_does_not_act_on_are_refused_and_change_nothing() {
    let ob = Onebox::shared();
    let rt = rt();
    let client = rt.block_on(async { ob.client() });
    let not_yet: Vec<_> = ENVS
        .iter()
        .filter(|e| matches!(e.status, Status::NotYet(_)))
        .collect();
    assert!(not_yet.len() > 25, "{}", not_yet.len());

    let supported: BTreeMap<String, String> = ENVS
        .iter()
        .filter(|e| e.status == Status::Supported)
        .map(|e| (e.key.to_string(), e.example.to_string()))
        .collect();
    assert!(supported.contains_key("default_ttl"), "{supported:?}");

    let before = rt.block_on(async {
        // The supported envs (`default_ttl`, ...) are accepted. Their effects on data are
        // tested where they are implemented.
        let kvs: Vec<(&str, &str)> = supported
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = set(&client, &kvs).await;
        assert_eq!((r.err, r.hint_message.as_str()), (ErrorCode::Ok, ""));
        let before = envs_of(&client, "temp").await.unwrap();
        assert_eq!(before, supported);

        // Every other known env is refused, alone or next to `default_ttl`, with a value its
        // check accepts.
        for e in &not_yet {
            let r = set(&client, &[(e.key, e.example)]).await;
            assert_eq!(r.err, ErrorCode::InvalidParameters, "{}", e.key);
            assert_not_yet_hint(&r.hint_message, e.key);
            let r = set(&client, &[("default_ttl", "60"), (e.key, e.example)]).await;
            assert_eq!(r.err, ErrorCode::InvalidParameters, "{}", e.key);
            assert_not_yet_hint(&r.hint_message, e.key);
        }
        // Unknown keys stay refused.
        let r = set(&client, &[("no.such.env", "1")]).await;
        assert_eq!(r.err, ErrorCode::InvalidParameters);
        assert!(r.hint_message.contains("no.such.env"), "{}", r.hint_message);
        assert_eq!(envs_of(&client, "temp").await.unwrap(), before, "unchanged");
        before
    });

    // The same through the shell, which prints the error code and the hint.
    let (success, out, err) = shell(
        ob,
        &[
            "use temp",
            "set_app_envs replica.deny_client_request reconfig*write",
            "set_app_envs replica.write_throttling 1000*delay*100",
            "set_app_envs manual_compact.disabled true",
            "set_app_envs replica_access_controller.allowed_users alice",
            "set_app_envs rocksdb.usage_scenario bulk_load",
            "get_app_envs",
        ],
    );
    assert!(!success, "{out}\n{err}");
    assert_eq!(err.matches("ERR_INVALID_PARAMETERS").count(), 5, "{err}");
    for key in [
        "replica.deny_client_request",
        "replica.write_throttling",
        "manual_compact.disabled",
        "replica_access_controller.allowed_users",
        "rocksdb.usage_scenario",
    ] {
        assert_not_yet_hint(&err, key);
    }
    assert!(
        err.contains("operator surface") && err.contains("security") && err.contains("bulk load"),
        "the hint names the later work: {err}"
    );
    let listing: String = before.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    assert!(
        out.contains(&format!("{listing}\n{} env(s)", before.len())),
        "unchanged: {out}"
    );

    // Envs given at creation are refused the same way; no table is created.
    let (success, out, err) = shell(
        ob,
        &["create envs_t -p 1 -r 3 -e default_ttl=60,manual_compact.disabled=true"],
    );
    assert!(
        !success && err.contains("create app envs_t failed: ERR_INVALID_PARAMETERS"),
        "{out}\n{err}"
    );
    wait_meta_log(
        ob,
        "env `manual_compact.disabled` is recognised but not supported yet",
    );
    rt.block_on(async {
        assert_eq!(envs_of(&client, "envs_t").await, None, "not created");
    });

    // Supported envs through the shell; del and clear (by prefix, all) still work.
    let (success, out, err) = shell(
        ob,
        &[
            "use temp",
            "clear_app_envs -a",
            "get_app_envs",
            "set_app_envs default_ttl 3600",
            "get_app_envs",
            "del_app_envs default_ttl",
            "get_app_envs",
            "set_app_envs default_ttl 7200 manual_compact.once.trigger_time 1700000000",
            "clear_app_envs -p manual_compact.",
            "get_app_envs",
            "clear_app_envs -a",
            "get_app_envs",
        ],
    );
    assert!(success, "{out}\n{err}");
    assert!(out.contains("default_ttl = 3600\n\n1 env(s)"), "{out}");
    assert!(out.contains("default_ttl = 7200\n\n1 env(s)"), "{out}");
    assert_eq!(out.matches("\n0 env(s)").count(), 3, "{out}");
    rt.block_on(async {
        assert_eq!(envs_of(&client, "temp").await.unwrap(), BTreeMap::new());
    });
}

#[test]
fn meta_level_lively_is_refused_and_the_level_stays_steady() {
    let ob = Onebox::shared();
    let rt = rt();
    let client = rt.block_on(async { ob.client() });
    let level = |l| MetaRequest::ControlMeta(MetaControlRequest { level: l });
    rt.block_on(async {
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
            MetaResponse::ControlMeta(r) => {
                assert_eq!(
                    (r.err, r.old_level),
                    (ErrorCode::Ok, MetaFunctionLevel::Steady)
                )
            }
            other => panic!("{other:?}"),
        }
        // Steady (what maintenance scripts set) is still accepted.
        match client.meta(level(MetaFunctionLevel::Steady)).await.unwrap() {
            MetaResponse::ControlMeta(r) => assert_eq!(r.err, ErrorCode::Ok),
            other => panic!("{other:?}"),
        }
    });
    // The response has no hint field; the leader logs the reason.
    wait_meta_log(
        ob,
        "meta level lively needs the load balancer, which is not built yet; steady is the \
         highest level supported",
    );
    let (success, out, err) = shell(ob, &["cluster_info"]);
    assert!(success && out.contains("fl_steady"), "{out}\n{err}");
    assert!(!out.contains("fl_lively"), "{out}");
}
