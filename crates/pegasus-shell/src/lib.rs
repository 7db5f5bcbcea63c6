//! The admin shell: Pegasus's shell commands, with their names and argument order
//! (`create <app> [-p n] [-r n]`, `set <hk> <sk> <value> [ttl]`, ...), run against a
//! cluster through the Rust client. [`Shell::execute`] runs one command line and returns
//! its output; the `pegasus shell` binary wraps it in a line editor with history, or runs
//! `-e` commands for scripts.
//!
//! Arguments are split like a POSIX shell (single and double quotes, backslash escapes);
//! keys and values may hold any bytes written as `\xNN`. Values are printed quoted, with
//! non-printable bytes escaped the same way.

#![warn(missing_docs)]

pub mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pegasus_client::{CasCheckType, CheckAndSetOptions, Client, ClientError, ScanOptions, Table};
use pegasus_proto::meta::{
    AppEnvOperation, AppInfo, AppStatus, ClusterInfoRequest, CreateAppOptions, CreateAppRequest,
    DropAppOptions, DropAppRequest, ListAppsRequest, ListNodesRequest, NodeStatus,
    RecallAppRequest, UpdateAppEnvRequest,
};
use pegasus_proto::{ErrorCode, MetaRequest, MetaResponse};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Wrong arguments; the message says how to call the command.
    #[error("{0}")]
    Usage(String),
    /// No table selected (`use <app>` first).
    #[error("no table selected: run `use <app>` first")]
    NoTable,
    /// The cluster answered with an error.
    #[error("{0}")]
    Server(String),
    /// The client failed.
    #[error("{0}")]
    Client(#[from] ClientError),
}

type Result<T> = std::result::Result<T, ShellError>;

/// Splits a command line into words: whitespace separates, quotes group, `\` escapes, and
/// `\xNN` inside a word stands for one byte.
pub fn split_words(line: &str) -> Result<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('x') => {
                        let hi = chars.next().and_then(|c| c.to_digit(16));
                        let lo = chars.next().and_then(|c| c.to_digit(16));
                        match (hi, lo) {
                            (Some(h), Some(l)) => cur.push((h * 16 + l) as u8),
                            _ => return Err(ShellError::Usage("bad \\x escape".into())),
                        }
                    }
                    Some('n') => cur.push(b'\n'),
                    Some('t') => cur.push(b'\t'),
                    Some(o) => {
                        let mut b = [0u8; 4];
                        cur.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
                    }
                    None => return Err(ShellError::Usage("dangling \\".into())),
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                in_word = true;
                let mut b = [0u8; 4];
                cur.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    if quote.is_some() {
        return Err(ShellError::Usage("unterminated quote".into()));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Quotes bytes for printing: printable ASCII as is, the rest as `\xNN`.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02X}");
            }
        }
    }
    s.push('"');
    s
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parsed `-x value` options and positional words.
struct Args {
    positional: Vec<Vec<u8>>,
    options: BTreeMap<String, Option<Vec<u8>>>,
}

/// Splits words into positionals and options; `flags` are options without a value.
fn parse_args(words: &[Vec<u8>], flags: &[&str]) -> Result<Args> {
    let mut positional = Vec::new();
    let mut options = BTreeMap::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let s = text(w);
        if s.starts_with('-') && s.len() > 1 && s.parse::<i64>().is_err() {
            let name = s.trim_start_matches('-').to_string();
            if flags.contains(&name.as_str()) {
                options.insert(name, None);
            } else {
                let v = it
                    .next()
                    .ok_or_else(|| ShellError::Usage(format!("option {s} needs a value")))?;
                options.insert(name, Some(v.clone()));
            }
        } else {
            positional.push(w.clone());
        }
    }
    Ok(Args {
        positional,
        options,
    })
}

impl Args {
    fn opt_str(&self, name: &str) -> Option<String> {
        self.options.get(name).and_then(|v| v.as_deref()).map(text)
    }

    fn opt_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.options.get(name).and_then(|v| v.clone())
    }

    fn opt_num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.opt_str(name) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ShellError::Usage(format!("-{name} expects a number, got {s:?}"))),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }
}

fn num<T: std::str::FromStr>(w: &[u8], what: &str) -> Result<T> {
    text(w)
        .parse()
        .map_err(|_| ShellError::Usage(format!("{what} must be a number, got {:?}", text(w))))
}

fn usage(s: &str) -> ShellError {
    ShellError::Usage(format!("usage: {s}"))
}

/// `check_and_set -t` names, as Pegasus's shell spells them.
fn check_type(name: &str) -> Option<CasCheckType> {
    let t = match name {
        "no_check" => 0,
        "not_exist" => 1,
        "not_exist_or_empty" => 2,
        "exist" => 3,
        "not_empty" => 4,
        "match_anywhere" => 5,
        "match_prefix" => 6,
        "match_postfix" => 7,
        "bytes_less" => 8,
        "bytes_less_or_equal" => 9,
        "bytes_equal" => 10,
        "bytes_greater_or_equal" => 11,
        "bytes_greater" => 12,
        "int_less" => 13,
        "int_less_or_equal" => 14,
        "int_equal" => 15,
        "int_greater_or_equal" => 16,
        "int_greater" => 17,
        _ => return None,
    };
    Some(CasCheckType::from_i32(t))
}

/// The commands, for `help`.
pub const HELP: &str = "\
tables:  ls [-a] [-s available|dropped] | create <app> [-p partitions] [-r replicas] [-e k=v,...]
         drop <app> [-r reserve_seconds] | recall <app_id> [new_name] | use <app>
         app <app> [-d] | get_app_envs | set_app_envs <k> <v> [k v ...] | del_app_envs <k> [k ...]
         clear_app_envs [-a] [-p prefix]
cluster: nodes [-d] | cluster_info | server_info | server_stat | app_stat
data:    set <hk> <sk> <value> [ttl_seconds] | get <hk> <sk> | del <hk> <sk> | exist <hk> <sk>
         ttl <hk> <sk> | incr <hk> <sk> [increment] | count <hk> (sortkey_count)
         multi_set <hk> <sk> <v> [sk v ...] | multi_get <hk> [sk ...] | multi_del <hk> <sk> [sk ...]
         check_and_set <hk> [-c check_sk] [-t check_type] [-o operand] [-s set_sk] [-v value] [-l ttl] [-r]
         hash_scan <hk> <start_sk> <stop_sk> [-n max] [-i no_value] | full_scan [-n max]
other:   help | exit";

/// A shell session: the client and the table selected with `use`.
#[derive(Debug)]
pub struct Shell {
    client: Client,
    table: Option<Table>,
}

impl Shell {
    /// A shell on the cluster behind `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            table: None,
        }
    }

    /// The selected table's name.
    pub fn current_table(&self) -> Option<&str> {
        self.table.as_ref().map(Table::name)
    }

    fn table(&self) -> Result<&Table> {
        self.table.as_ref().ok_or(ShellError::NoTable)
    }

    async fn meta(&self, req: MetaRequest) -> Result<MetaResponse> {
        Ok(self.client.meta(req).await?)
    }

    /// Runs one command line; returns what it prints.
    pub async fn execute(&mut self, line: &str) -> Result<String> {
        let words = split_words(line)?;
        let Some((cmd, rest)) = words.split_first() else {
            return Ok(String::new());
        };
        let cmd = text(cmd);
        match cmd.as_str() {
            "help" => Ok(format!("{HELP}\n")),
            "ls" => self.ls(rest).await,
            "create" => self.create(rest).await,
            "drop" => self.drop_app(rest).await,
            "recall" => self.recall(rest).await,
            "use" => self.use_table(rest).await,
            "app" => self.app(rest).await,
            "nodes" => self.nodes(rest).await,
            "cluster_info" => self.cluster_info().await,
            "get_app_envs" => self.get_envs().await,
            "set_app_envs" => self.set_envs(rest).await,
            "del_app_envs" => self.del_envs(rest).await,
            "clear_app_envs" => self.clear_envs(rest).await,
            "set" => self.set(rest).await,
            "get" => self.get(rest).await,
            "del" => self.del(rest).await,
            "exist" => self.exist(rest).await,
            "ttl" => self.ttl(rest).await,
            "incr" => self.incr(rest).await,
            "count" | "sortkey_count" => self.count(rest).await,
            "multi_set" => self.multi_set(rest).await,
            "multi_get" => self.multi_get(rest).await,
            "multi_del" => self.multi_del(rest).await,
            "check_and_set" => self.check_and_set(rest).await,
            "hash_scan" => self.hash_scan(rest).await,
            "full_scan" => self.full_scan(rest).await,
            "server_info" => self.server_info().await,
            "server_stat" => self.server_stat().await,
            "app_stat" => self.app_stat().await,
            other => Err(ShellError::Usage(format!(
                "unknown command {other:?}; `help` lists the commands"
            ))),
        }
    }

    async fn list(&self, status: AppStatus) -> Result<Vec<AppInfo>> {
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

    async fn ls(&self, rest: &[Vec<u8>]) -> Result<String> {
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

    async fn create(&self, rest: &[Vec<u8>]) -> Result<String> {
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

    async fn drop_app(&mut self, rest: &[Vec<u8>]) -> Result<String> {
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

    async fn recall(&self, rest: &[Vec<u8>]) -> Result<String> {
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

    async fn use_table(&mut self, rest: &[Vec<u8>]) -> Result<String> {
        let [name] = rest else {
            return Err(usage("use <app>"));
        };
        let name = text(name);
        let t = self.client.open_table(&name).await?;
        self.table = Some(t);
        Ok(format!("OK, current table is {name}\n"))
    }

    async fn app(&self, rest: &[Vec<u8>]) -> Result<String> {
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

    async fn nodes(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["d"])?;
        let nodes = match self
            .meta(MetaRequest::ListNodes(ListNodesRequest {
                status: NodeStatus::Invalid,
            }))
            .await?
        {
            MetaResponse::ListNodes(r) if r.err == ErrorCode::Ok => r.infos,
            MetaResponse::ListNodes(r) => {
                return Err(ShellError::Server(format!("nodes: {}", r.err)))
            }
            other => return Err(ShellError::Server(format!("unexpected {other:?}"))),
        };
        // With -d: primaries and replicas per node, over every available table.
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        if a.flag("d") {
            for app in self.list(AppStatus::Available).await? {
                let q = self.client.query_config(&app.app_name).await?;
                for p in &q.partitions {
                    if let Some(addr) = p.primary.to_socket_addr() {
                        counts.entry(addr.to_string()).or_default().0 += 1;
                        counts.entry(addr.to_string()).or_default().1 += 1;
                    }
                    for s in p.secondaries.iter().filter_map(|s| s.to_socket_addr()) {
                        counts.entry(s.to_string()).or_default().1 += 1;
                    }
                }
            }
        }
        // With -d: each node's data disk, as the meta leader last heard it.
        let disks = if a.flag("d") {
            self.node_disks().await
        } else {
            BTreeMap::new()
        };
        let mut out = format!("{:<24}{:<10}", "address", "status");
        if a.flag("d") {
            let _ = write!(
                out,
                "{:<10}{:<10}{:<15}{:<15}{:<6}",
                "primary", "replicas", "disk_avail_mb", "disk_total_mb", "disk"
            );
        }
        out.push('\n');
        let mut alive = 0;
        for n in &nodes {
            let addr = n
                .node
                .to_socket_addr()
                .map_or("-".into(), |a| a.to_string());
            let status = if n.status == NodeStatus::Alive {
                alive += 1;
                "ALIVE"
            } else {
                "UNALIVE"
            };
            let _ = write!(out, "{addr:<24}{status:<10}");
            if a.flag("d") {
                let (p, r) = counts.get(&addr).copied().unwrap_or((0, 0));
                let _ = write!(out, "{p:<10}{r:<10}");
                match disks.get(&addr) {
                    Some(d) => {
                        let _ = write!(
                            out,
                            "{:<15}{:<15}{:<6}",
                            d.available_bytes >> 20,
                            d.capacity_bytes >> 20,
                            if d.insufficient { "LOW" } else { "ok" }
                        );
                    }
                    None => {
                        let _ = write!(out, "{:<15}{:<15}{:<6}", "-", "-", "-");
                    }
                }
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "\ntotal_node_count  : {}\nalive_node_count  : {alive}",
            nodes.len()
        );
        Ok(out)
    }

    /// Each node's disk from the meta leader's `/meta/nodes` (empty if it cannot be read:
    /// `nodes -d` then shows `-`).
    async fn node_disks(&self) -> BTreeMap<String, stats::NodeDisk> {
        self.meta_leader_http("/meta/nodes")
            .await
            .map(|body| stats::parse_node_disks(&body))
            .unwrap_or_default()
    }

    /// `GET path` on the meta leader (what only the leader knows: liveness, disks).
    async fn meta_leader_http(&self, path: &str) -> Option<String> {
        // `cluster_info` is answered by the leader, which names itself.
        let leader = match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await
        {
            Ok(MetaResponse::ClusterInfo(r)) => r
                .keys
                .iter()
                .zip(&r.values)
                .find(|(k, _)| *k == "primary_meta_server")
                .and_then(|(_, v)| v.parse::<std::net::SocketAddr>().ok()),
            _ => None,
        };
        stats::http_get(leader?, path).await.ok()
    }

    /// Every server: metas from `cluster_info`, replica servers from `nodes`.
    async fn servers(&self) -> Result<(Vec<std::net::SocketAddr>, Vec<std::net::SocketAddr>)> {
        let metas = match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await?
        {
            MetaResponse::ClusterInfo(r) => r
                .keys
                .iter()
                .zip(&r.values)
                .find(|(k, _)| *k == "meta_servers")
                .map(|(_, v)| v.split(',').filter_map(|a| a.parse().ok()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let replicas = match self
            .meta(MetaRequest::ListNodes(ListNodesRequest {
                status: NodeStatus::Alive,
            }))
            .await?
        {
            MetaResponse::ListNodes(r) => r
                .infos
                .iter()
                .filter_map(|n| n.node.to_socket_addr())
                .collect(),
            _ => Vec::new(),
        };
        Ok((metas, replicas))
    }

    async fn server_info(&self) -> Result<String> {
        let (metas, replicas) = self.servers().await?;
        let mut out = format!("{:<24}{:<10}{}\n", "address", "role", "version");
        for addr in metas.iter().chain(replicas.iter()) {
            match stats::http_get(*addr, "/version").await {
                Ok(body) => {
                    let field = |k: &str| {
                        body.split(&format!("\"{k}\":\""))
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .unwrap_or("?")
                            .to_string()
                    };
                    let _ = writeln!(out, "{addr:<24}{:<10}{}", field("role"), field("version"));
                }
                Err(e) => {
                    let _ = writeln!(out, "{addr:<24}{:<10}{e}", "?");
                }
            }
        }
        Ok(out)
    }

    async fn server_stat(&self) -> Result<String> {
        let (_, replicas) = self.servers().await?;
        // Two scrapes one second apart give per-second rates.
        let mut first = BTreeMap::new();
        for addr in &replicas {
            if let Ok(body) = stats::http_get(*addr, "/metrics").await {
                first.insert(*addr, stats::parse_metrics(&body));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut out = format!(
            "{:<24}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            "address", "get_qps", "put_qps", "errors/s", "primary", "secondary"
        );
        for addr in &replicas {
            let Ok(body) = stats::http_get(*addr, "/metrics").await else {
                let _ = writeln!(out, "{addr:<24} unreachable");
                continue;
            };
            let now = stats::parse_metrics(&body);
            let before = first.get(addr).cloned().unwrap_or_default();
            let rate = |name: &str, labels: &[(&str, &str)]| {
                stats::total(&now, name, labels) - stats::total(&before, name, labels)
            };
            let reads: f64 = [
                "get",
                "multi_get",
                "batch_get",
                "scan",
                "get_scanner",
                "sortkey_count",
                "ttl",
            ]
            .iter()
            .map(|op| rate("pegasus_replica_requests_total", &[("op", op)]))
            .sum();
            let writes: f64 = [
                "put",
                "multi_put",
                "remove",
                "multi_remove",
                "incr",
                "check_and_set",
                "check_and_mutate",
            ]
            .iter()
            .map(|op| rate("pegasus_replica_requests_total", &[("op", op)]))
            .sum();
            let _ = writeln!(
                out,
                "{addr:<24}{reads:>10.0}{writes:>10.0}{:>10.0}{:>10.0}{:>10.0}",
                rate("pegasus_replica_request_errors_total", &[]),
                stats::total(&now, "pegasus_replica_replicas", &[("status", "primary")]),
                stats::total(&now, "pegasus_replica_replicas", &[("status", "secondary")]),
            );
        }
        Ok(out)
    }

    async fn app_stat(&self) -> Result<String> {
        let apps = self.list(AppStatus::Available).await?;
        let (_, replicas) = self.servers().await?;
        let mut samples = Vec::new();
        for addr in &replicas {
            if let Ok(body) = stats::http_get(*addr, "/metrics").await {
                samples.extend(stats::parse_metrics(&body));
            }
        }
        let mut out = format!(
            "{:<24}{:>8}{:>12}{:>14}{:>14}{:>14}\n",
            "app_name", "app_id", "partitions", "est_keys", "sst_bytes", "memtable"
        );
        for a in &apps {
            let id = a.app_id.to_string();
            // Every replica holds a copy: divide the sums by the replica count.
            let copies = f64::from(a.max_replica_count.max(1));
            let per =
                |name: &str| stats::total(&samples, name, &[("app_id", id.as_str())]) / copies;
            let _ = writeln!(
                out,
                "{:<24}{:>8}{:>12}{:>14.0}{:>14.0}{:>14.0}",
                a.app_name,
                a.app_id,
                a.partition_count,
                per("pegasus_replica_rdb_estimated_keys"),
                per("pegasus_replica_rdb_sst_bytes"),
                per("pegasus_replica_rdb_memtable_bytes"),
            );
        }
        Ok(out)
    }

    async fn cluster_info(&self) -> Result<String> {
        match self
            .meta(MetaRequest::ClusterInfo(ClusterInfoRequest {}))
            .await?
        {
            MetaResponse::ClusterInfo(r) if r.err == ErrorCode::Ok => {
                let mut out = String::new();
                for (k, v) in r.keys.iter().zip(&r.values) {
                    let _ = writeln!(out, "{k:<28}: {v}");
                }
                Ok(out)
            }
            MetaResponse::ClusterInfo(r) => {
                Err(ShellError::Server(format!("cluster_info: {}", r.err)))
            }
            other => Err(ShellError::Server(format!("unexpected {other:?}"))),
        }
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

    async fn get_envs(&self) -> Result<String> {
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

    async fn set_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(usage("set_app_envs <key> <value> [key value ...]"));
        }
        let keys = rest.iter().step_by(2).map(|w| text(w)).collect();
        let values = rest.iter().skip(1).step_by(2).map(|w| text(w)).collect();
        self.envs(AppEnvOperation::Set, Some(keys), Some(values), None)
            .await
    }

    async fn del_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        if rest.is_empty() {
            return Err(usage("del_app_envs <key> [key ...]"));
        }
        let keys = rest.iter().map(|w| text(w)).collect();
        self.envs(AppEnvOperation::Del, Some(keys), None, None)
            .await
    }

    async fn clear_envs(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["a"])?;
        let prefix = match (a.flag("a"), a.opt_str("p")) {
            (true, _) => String::new(),
            (false, Some(p)) => p,
            (false, None) => return Err(usage("clear_app_envs [-a] [-p prefix]")),
        };
        self.envs(AppEnvOperation::Clear, None, None, Some(prefix))
            .await
    }

    async fn set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let (hk, sk, v, ttl) = match rest {
            [hk, sk, v] => (hk, sk, v, None),
            [hk, sk, v, ttl] => (hk, sk, v, Some(Duration::from_secs(num(ttl, "ttl")?))),
            _ => return Err(usage("set <hk> <sk> <value> [ttl_seconds]")),
        };
        self.table()?.set(hk, sk, v, ttl).await?;
        Ok("OK\n".into())
    }

    async fn get(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("get <hk> <sk>"));
        };
        Ok(match self.table()?.get(hk, sk).await? {
            Some(v) => format!("{}\n", escape(&v)),
            None => "Not found\n".into(),
        })
    }

    async fn del(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("del <hk> <sk>"));
        };
        self.table()?.del(hk, sk).await?;
        Ok("OK\n".into())
    }

    async fn exist(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("exist <hk> <sk>"));
        };
        Ok(if self.table()?.exist(hk, sk).await? {
            "True\n".into()
        } else {
            "False\n".into()
        })
    }

    async fn ttl(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk, sk] = rest else {
            return Err(usage("ttl <hk> <sk>"));
        };
        Ok(match self.table()?.ttl(hk, sk).await? {
            None => "Not found\n".into(),
            Some(-1) => "Infinite\n".into(),
            Some(s) => format!("{s}\n"),
        })
    }

    async fn incr(&self, rest: &[Vec<u8>]) -> Result<String> {
        let (hk, sk, by) = match rest {
            [hk, sk] => (hk, sk, 1),
            [hk, sk, by] => (hk, sk, num(by, "increment")?),
            _ => return Err(usage("incr <hk> <sk> [increment]")),
        };
        let v = self.table()?.incr(hk, sk, by, None).await?;
        Ok(format!("{v}\n"))
    }

    async fn count(&self, rest: &[Vec<u8>]) -> Result<String> {
        let [hk] = rest else {
            return Err(usage("count <hk>"));
        };
        Ok(format!("{}\n", self.table()?.sortkey_count(hk).await?))
    }

    async fn multi_set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, kvs)) = rest.split_first() else {
            return Err(usage("multi_set <hk> <sk> <value> [sk value ...]"));
        };
        if kvs.is_empty() || !kvs.len().is_multiple_of(2) {
            return Err(usage("multi_set <hk> <sk> <value> [sk value ...]"));
        }
        let pairs: Vec<(&[u8], &[u8])> = kvs
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.as_slice(), v.as_slice())),
                _ => None,
            })
            .collect();
        self.table()?.multi_set(hk, &pairs, None).await?;
        Ok("OK\n".into())
    }

    async fn multi_get(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, sks)) = rest.split_first() else {
            return Err(usage("multi_get <hk> [sk ...]"));
        };
        let sks: Vec<&[u8]> = sks.iter().map(Vec::as_slice).collect();
        let r = self.table()?.multi_get(hk, &sks).await?;
        let mut out = String::new();
        for (k, v) in &r.kvs {
            let _ = writeln!(out, "{} : {} => {}", escape(hk), escape(k), escape(v));
        }
        let _ = writeln!(
            out,
            "\n{} key-value pair(s){}",
            r.kvs.len(),
            if r.all_fetched {
                ""
            } else {
                " (more not fetched)"
            }
        );
        Ok(out)
    }

    async fn multi_del(&self, rest: &[Vec<u8>]) -> Result<String> {
        let Some((hk, sks)) = rest.split_first() else {
            return Err(usage("multi_del <hk> <sk> [sk ...]"));
        };
        if sks.is_empty() {
            return Err(usage("multi_del <hk> <sk> [sk ...]"));
        }
        let sks: Vec<&[u8]> = sks.iter().map(Vec::as_slice).collect();
        let n = self.table()?.multi_del(hk, &sks).await?;
        Ok(format!("{n} deleted\n"))
    }

    async fn check_and_set(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &["r"])?;
        let [hk] = a.positional.as_slice() else {
            return Err(usage(
                "check_and_set <hk> [-c check_sk] [-t check_type] [-o operand] [-s set_sk] [-v value] [-l ttl] [-r]",
            ));
        };
        let check_sk = a.opt_bytes("c").unwrap_or_default();
        let t = a.opt_str("t").unwrap_or_else(|| "no_check".into());
        let check_type =
            check_type(&t).ok_or_else(|| ShellError::Usage(format!("unknown check type {t:?}")))?;
        let operand = a.opt_bytes("o").unwrap_or_default();
        let value = a
            .opt_bytes("v")
            .ok_or_else(|| ShellError::Usage("check_and_set needs -v value".into()))?;
        let ttl: Option<u64> = a.opt_num("l")?;
        let opts = CheckAndSetOptions {
            set_sort_key: a.opt_bytes("s").map(Bytes::from),
            ttl: ttl.map(Duration::from_secs),
            return_check_value: a.flag("r"),
        };
        let r = self
            .table()?
            .check_and_set(hk, &check_sk, check_type, &operand, &value, &opts)
            .await?;
        let mut out = if r.set_succeed {
            "set succeed\n".to_string()
        } else {
            "set failed, because check not passed\n".to_string()
        };
        if a.flag("r") {
            match r.check_value {
                Some(v) => {
                    let _ = writeln!(out, "check value: {}", escape(&v));
                }
                None => out.push_str("check value: not found\n"),
            }
        }
        Ok(out)
    }

    async fn hash_scan(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let [hk, start, stop] = a.positional.as_slice() else {
            return Err(usage(
                "hash_scan <hk> <start_sk> <stop_sk> [-n max] [-i true|false]",
            ));
        };
        let max: usize = a.opt_num("n")?.unwrap_or(usize::MAX);
        let no_value = a.opt_str("i").is_some_and(|v| v == "true");
        let mut scanner = self
            .table()?
            .get_scanner(
                hk,
                start,
                stop,
                ScanOptions {
                    no_value,
                    ..ScanOptions::default()
                },
            )
            .await?;
        let mut out = String::new();
        let mut n = 0;
        while n < max {
            let Some((h, s, v)) = scanner.next().await? else {
                break;
            };
            n += 1;
            let _ = writeln!(out, "{} : {} => {}", escape(&h), escape(&s), escape(&v));
        }
        scanner.close().await;
        let _ = writeln!(out, "\n{n} key-value pair(s)");
        Ok(out)
    }

    async fn full_scan(&self, rest: &[Vec<u8>]) -> Result<String> {
        let a = parse_args(rest, &[])?;
        let max: usize = a.opt_num("n")?.unwrap_or(usize::MAX);
        let scanners = self
            .table()?
            .get_unordered_scanners(usize::MAX, ScanOptions::default())
            .await?;
        let mut out = String::new();
        let mut n = 0;
        'outer: for mut s in scanners {
            while let Some((h, k, v)) = s.next().await? {
                if n >= max {
                    break 'outer;
                }
                n += 1;
                let _ = writeln!(out, "{} : {} => {}", escape(&h), escape(&k), escape(&v));
            }
        }
        let _ = writeln!(out, "\n{n} key-value pair(s)");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_with_byte_escapes() {
        let w = split_words(r#"set "hash key" 'sk 1' v\x00\xFFz"#).unwrap();
        assert_eq!(
            w,
            vec![
                b"set".to_vec(),
                b"hash key".to_vec(),
                b"sk 1".to_vec(),
                vec![b'v', 0, 0xff, b'z']
            ]
        );
        assert!(split_words("get \"open").is_err());
        assert!(split_words("get \\x4").is_err());
        assert_eq!(split_words("   ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            split_words("a \"\"").unwrap(),
            vec![b"a".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn values_print_escaped() {
        assert_eq!(escape(b"ab\x00\"c"), r#""ab\x00\"c""#);
    }

    #[test]
    fn options_and_positionals_separate() {
        let w = split_words("t -p 8 -r 3 -d").unwrap();
        let a = parse_args(&w, &["d"]).unwrap();
        assert_eq!(a.positional, vec![b"t".to_vec()]);
        assert_eq!(a.opt_num::<i32>("p").unwrap(), Some(8));
        assert!(a.flag("d"));
        // A negative number is a value, not an option.
        let w = split_words("incr hk sk -5").unwrap();
        assert_eq!(parse_args(&w, &[]).unwrap().positional.len(), 4);
        assert!(parse_args(&split_words("x -p").unwrap(), &[]).is_err());
    }

    #[test]
    fn check_types_use_pegasus_shell_names() {
        assert_eq!(check_type("not_exist"), Some(CasCheckType::ValueNotExist));
        assert_eq!(check_type("int_greater"), Some(CasCheckType::from_i32(17)));
        assert_eq!(check_type("nope"), None);
    }
}
