//! An async Rust client for Pegasus-compatible clusters.
//!
//! The client asks a meta server for a table's partition configuration, routes each request
//! to the primary of `crc64(hash_key) % partition_count` (by the sort key when the hash key is
//! empty), and, like the official clients, refreshes the configuration and retries on
//! `ERR_OBJECT_NOT_FOUND`, `ERR_INVALID_STATE`, `ERR_PARENT_PARTITION_MISUSED` and transport
//! errors until the operation's timeout — a read always, a write only when it certainly was
//! not applied (never sent, or refused before being proposed). A write whose outcome is
//! unknown (sent and then the connection was lost, or `ERR_TIMEOUT`) is returned to the
//! caller, since re-sending it could apply it twice. Requests to one server share a
//! pipelined connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pegasus_client::ClientError> {
//! use pegasus_client::{Client, ClientConfig};
//! let client = Client::new(ClientConfig::new(["127.0.0.1:34601".parse().unwrap()]));
//! let table = client.open_table("temp").await?;
//! table.set(b"user1", b"name", b"alice", None).await?;
//! assert_eq!(table.get(b"user1", b"name").await?.as_deref(), Some(&b"alice"[..]));
//! let mut scanner = table.get_scanner(b"user1", b"", b"", Default::default()).await?;
//! while let Some((_hash_key, sort_key, value)) = scanner.next().await? {
//!     println!("{sort_key:?} = {value:?}");
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod cluster;
mod error;
mod scanner;
mod table;

pub use cluster::{Client, ClientConfig};
pub use error::{ClientError, Result};
pub use pegasus_core::rrdb::{CasCheckType, FilterType, Mutate, MutateOperation};
pub use scanner::{Record, ScanOptions, Scanner};
pub use table::{CheckAndSetOptions, CheckAndSetResult, MultiGetOptions, MultiGetResult, Table};
