//! The table commands: `ls`, `create`, `drop`, `recall`, `use`, `app` and the table
//! envs (`get_app_envs`, `set_app_envs`, `del_app_envs`, `clear_app_envs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use pegasus_proto::meta::{
    AppEnvOperation, AppInfo, AppStatus, CreateAppOptions, CreateAppRequest, DropAppOptions,
    DropAppRequest, ListAppsRequest, RecallAppRequest, UpdateAppEnvRequest,
};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

use crate::stats;
use crate::words::{num, parse_args, text, usage};
use crate::{Result, Shell, ShellError};

impl Shell {
    pub(crate) async fn list(&self, status: AppStatus) -> Result<Vec<AppInfo>> {
        match self
            .meta(MetaRequest::ListApps(ListAppsRequest {
                status,
                ..ListAppsRequest::default()
            }))
            .await?
        {
            MetaResponse::ListApps(r) if r.err == ErrorCode::Ok => Ok(r.infos),
            MetaResponse::ListApps(r) => Err(ShellError::Server(format!(
                "list tables: {} {}",
                r.err,
                r.hint_message.unwrap_or_default()
            ))),
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
    }

    pub(crate) async fn ls(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["a"])?;
        let status = match a.opt_str("s").as_deref() {
            _ if a.flag("a") => AppStatus::Invalid,
            None | Some("available") => AppStatus::Available,
            Some("dropped") => AppStatus::Dropped,
            Some(s) => return Err(ShellError::Usage(format!("unknown status {s:?}"))),
        };
        let apps = self.list(status).await?;
        let mut out = format!(
            "{:<8}{:<12}{:<24}{:<12}{:<12}{:<16}\n",
            "app_id", "status", "app_name", "partitions", "replicas", "drop_time"
        );
        for a in &apps {
            let status = match a.status {
                AppStatus::Available => "AVAILABLE",
                AppStatus::Dropped => "DROPPED",
                _ => "OTHER",
            };
            let _ = writeln!(
                out,
                "{:<8}{:<12}{:<24}{:<12}{:<12}{:<16}",
                a.app_id,
                status,
                a.app_name,
                a.partition_count,
                a.max_replica_count,
                if a.drop_second > 0 {
                    a.drop_second.to_string()
                } else {
                    "-".into()
                }
            );
        }
        let _ = writeln!(out, "\n{} table(s)", apps.len());
        Ok(out)
    }

    pub(crate) async fn create(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let [name] = a.positional.as_slice() else {
            return Err(usage(
                "create <app> [-p partitions] [-r replicas] [-e k=v,...]",
            ));
        };
        let name = text(name);
        let partitions = a.opt_num("p")?.unwrap_or(4);
        let replicas = a.opt_num("r")?.unwrap_or(3);
        let mut envs = BTreeMap::new();
        if let Some(e) = a.opt_str("e") {
            for kv in e.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| ShellError::Usage(format!("-e expects k=v, got {kv:?}")))?;
                envs.insert(k.to_string(), v.to_string());
            }
        }
        let with_envs = !envs.is_empty();
        let r = match self
            .meta(MetaRequest::CreateApp(CreateAppRequest {
                app_name: name.clone(),
                options: CreateAppOptions {
                    partition_count: partitions,
                    replica_count: replicas,
                    success_if_exist: false,
                    app_type: "pegasus".into(),
                    is_stateful: true,
                    envs,
                    atomic_idempotent: None,
                },
            }))
            .await?
        {
            MetaResponse::CreateApp(r) => r,
            other => return Err(ShellError::Server(format!("unexpected {other:?}"))),
        };
        if r.err != ErrorCode::Ok {
            // The create response carries no hint: say where the likely cause is.
            let hint = if r.err == ErrorCode::InvalidParameters && with_envs {
                " (meta refuses -e envs that are unknown or not supported yet by pegasus-rs; \
                 set_app_envs on an existing table names the reason)"
            } else {
                ""
            };
            return Err(ShellError::Server(format!(
                "create app {name} failed: {}{hint}",
                r.err
            )));
        }
        // Like Pegasus's shell: wait until every partition is healthy.
        let deadline = Instant::now() + Duration::from_secs(60);
        let want = usize::try_from(replicas).unwrap_or(0);
        loop {
            let q = self.client.query_config(&name).await?;
            let healthy = q
                .partitions
                .iter()
                .filter(|p| p.primary.is_valid() && p.secondaries.len() + 1 == want)
                .count();
            if q.err == ErrorCode::Ok && healthy == q.partitions.len() && !q.partitions.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Ok(format!(
                    "create app {name} succeed (app_id {}), but only {healthy} of {partitions} partitions are healthy after 60 s\n",
                    r.appid
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(format!("create app {name} succeed, app_id {}\n", r.appid))
    }

    pub(crate) async fn drop_app(&mut self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let [name] = a.positional.as_slice() else {
            return Err(usage("drop <app> [-r reserve_seconds]"));
        };
        let name = text(name);
        let reserve: Option<i64> = a.opt_num("r")?;
        match self
            .meta(MetaRequest::DropApp(DropAppRequest {
                app_name: name.clone(),
                options: DropAppOptions {
                    success_if_not_exist: false,
                    reserve_seconds: reserve,
                },
            }))
            .await?
        {
            MetaResponse::DropApp(r) if r.err == ErrorCode::Ok => {
                if self.current_table() == Some(name.as_str()) {
                    self.table = None;
                }
                Ok(format!("drop app {name} succeed\n"))
            }
            MetaResponse::DropApp(r) => Err(ShellError::Server(format!(
                "drop app {name} failed: {}",
                r.err
            ))),
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
    }

    pub(crate) async fn recall(&self, rest: &[Vec<u8>]) -> Result<String> {
        let (id, new_name) = match rest {
            [id] => (num::<i32>(id, "app_id")?, String::new()),
            [id, n] => (num::<i32>(id, "app_id")?, text(n)),
            _ => return Err(usage("recall <app_id> [new_name]")),
        };
        match self
            .meta(MetaRequest::RecallApp(RecallAppRequest {
                app_id: id,
                new_app_name: new_name,
            }))
            .await?
        {
            MetaResponse::RecallApp(r) if r.err == ErrorCode::Ok => Ok(format!(
                "recall app {} succeed, name {}\n",
                id, r.info.app_name
            )),
            MetaResponse::RecallApp(r) => Err(ShellError::Server(format!(
                "recall app {id} failed: {}",
                r.err
            ))),
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
    }

    pub(crate) async fn use_table(&mut self, rest: &[Vec<u8>]) -> Result<String> {
        let [name] = rest else {
            return Err(usage("use <app>"));
        };
        let name = text(name);
        let t = self.client.open_table(&name).await?;
        self.table = Some(t);
        Ok(format!("OK, current table is {name}\n"))
    }

    pub(crate) async fn app(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["d"])?;
        let [name] = a.positional.as_slice() else {
            return Err(usage("app <app> [-d]"));
        };
        let name = text(name);
        let q = self.client.query_config(&name).await?;
        if q.err != ErrorCode::Ok {
            return Err(ShellError::Server(format!("app {name}: {}", q.err)));
        }
        let healthy = q
            .partitions
            .iter()
            .filter(|p| {
                p.primary.is_valid()
                    && i32::try_from(p.secondaries.len() + 1).unwrap_or(0) == p.max_replica_count
            })
            .count();
        let mut out = format!(
            "app_name          : {name}\napp_id            : {}\npartition_count   : {}\nhealthy           : {healthy}\n",
            q.app_id, q.partition_count
        );
        if a.flag("d") {
            // Partitions the meta leader keeps short of copies: only nodes without disk
            // space could take one.
            let short = self
                .meta_leader_http(&format!("/meta/app?name={name}"))
                .await
                .map(|body| stats::parse_short_of_disk(&body))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{:<6}{:<8}{:<24}secondaries",
                "pidx", "ballot", "primary"
            );
            for p in &q.partitions {
                let secs: Vec<String> = p
                    .secondaries
                    .iter()
                    .map(|s| s.to_socket_addr().map_or("-".into(), |a| a.to_string()))
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<6}{:<8}{:<24}[{}]{}",
                    p.pid.pidx,
                    p.ballot,
                    p.primary
                        .to_socket_addr()
                        .map_or("-".into(), |a| a.to_string()),
                    secs.join(","),
                    if short.contains(&p.pid.pidx) {
                        "  short of disk: no node with space can take another copy"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(out)
    }

    async fn envs(
        &self,
        op: AppEnvOperation,
        keys: Option<Vec<String>>,
        values: Option<Vec<String>>,
        prefix: Option<String>,
    ) -> Result<String> {
        let name = self.table()?.name().to_string();
        match self
            .meta(MetaRequest::UpdateAppEnv(UpdateAppEnvRequest {
                app_name: name,
                op,
                keys,
                values,
                clear_prefix: prefix,
            }))
            .await?
        {
            MetaResponse::UpdateAppEnv(r) if r.err == ErrorCode::Ok => Ok("OK\n".into()),
            MetaResponse::UpdateAppEnv(r) => {
                Err(ShellError::Server(format!("{}: {}", r.err, r.hint_message)))
            }
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
    }

    pub(crate) async fn get_envs(&self) -> Result<String> {
        let name = self.table()?.name().to_string();
        let apps = self.list(AppStatus::Available).await?;
        let app = apps
            .iter()
            .find(|a| a.app_name == name)
            .ok_or_else(|| ShellError::Server(format!("table {name} does not exist")))?;
        let mut out = String::new();
        for (k, v) in &app.envs {
            let _ = writeln!(out, "{k} = {v}");
        }
        let _ = writeln!(out, "\n{} env(s)", app.envs.len());
        Ok(out)
    }

    pub(crate) async fn set_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(usage("set_app_envs <key> <value> [key value ...]"));
        }
        let keys = rest.iter().step_by(2).map(|w| text(w)).collect();
        let values = rest.iter().skip(1).step_by(2).map(|w| text(w)).collect();
        self.envs(AppEnvOperation::Set, Some(keys), Some(values), None)
            .await
    }

    pub(crate) async fn del_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        if rest.is_empty() {
            return Err(usage("del_app_envs <key> [key ...]"));
        }
        let keys = rest.iter().map(|w| text(w)).collect();
        self.envs(AppEnvOperation::Del, Some(keys), None, None)
            .await
    }

    pub(crate) async fn clear_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["a"])?;
        let prefix = match (a.flag("a"), a.opt_str("p")) {
            (true, _) => String::new(),
            (false, Some(p)) => p,
            (false, None) => return Err(usage("clear_app_envs [-a] [-p prefix]")),
        };
        self.envs(AppEnvOperation::Clear, None, None, Some(prefix))
            .await
    }
}
