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

mod cluster;
mod data;
pub mod stats;
mod tables;
mod words;

pub use words::{escape, split_words};

use pegasus_client::{Client, ClientError, Table};
use pegasus_proto::{MetaRequest, MetaResponse};

use words::text;

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
}
