//! Core types of the Pegasus data model, shared by every other crate.
//!
//! This crate does no I/O: no sockets, no files, no clocks other than through the
//! [`time::Clock`] trait. It holds
//!
//! * identifiers ([`ids`]): app id, partition index, [`ids::Gpid`], ballots and decrees;
//! * partition configurations ([`config`]): ballot, primary, secondaries, drops;
//! * the storage key schema ([`key`]): `[u16 BE hashkey len][hashkey][sortkey]`;
//! * the storage value schema ([`value`]): `[u32 expire_ts][u64 timetag][data]`;
//! * Pegasus's partition hash ([`crc64`]);
//! * the storage status codes carried in every response ([`status`]);
//! * the client-facing request and response structures of the `rrdb` service ([`rrdb`]),
//!   as plain Rust data. The thrift encoding of these lives in the protocol crate.
#![warn(missing_docs)]

pub mod config;
pub mod crc64;
pub mod ids;
pub mod key;
pub mod rrdb;
pub mod status;
pub mod time;
pub mod value;

pub use bytes::Bytes;
