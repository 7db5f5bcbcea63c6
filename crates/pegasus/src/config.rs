//! The server configuration: one typed tree, read from TOML, validated before use.
//!
//! Sections and keys follow Pegasus's `config.ini` where a Pegasus operator would look for
//! them (`[pegasus.server] rocksdb_*`). `etc/pegasus.toml` is the annotated example; a test
//! parses it, so it cannot drift from this code.

use std::path::Path;

use anyhow::Context;
use pegasus_meta::config::MetaServerConfig;
use pegasus_meta::protocol::FailureDetectorConfig;
use pegasus_replica::server::ReplicaServerConfig;
use pegasus_rpc::NetworkConfig;
use pegasus_storage::StorageConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[pegasus.*]` sections.
    pub pegasus: PegasusSection,
    /// `[meta_server]`: the meta server.
    pub meta_server: MetaServerConfig,
    /// `[replication]`: failure detection and leases (meta and replica servers).
    pub replication: FailureDetectorConfig,
    /// `[replica_server]`: the replica server.
    pub replica_server: ReplicaServerConfig,
    /// `[network]`: connection caps, timeouts and memory bounds of every server port.
    pub network: NetworkConfig,
    pub metrics: MetricsSection,
}

/// `[metrics]`: whether the process records metrics at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Record metrics and serve them on `/metrics`. Off only to measure what recording
    /// costs (BENCHMARKS.md): `/metrics` then answers 503.
    pub enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[pegasus.*]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PegasusSection {
    /// `[pegasus.server]`: storage engine tuning and read limits.
    pub server: StorageConfig,
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Checks every section.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.pegasus.server.validate()?;
        self.meta_server
            .validate()
            .map_err(|e| anyhow::anyhow!("[meta_server] {e}"))?;
        self.replication
            .validate()
            .map_err(|e| anyhow::anyhow!("[replication] {e}"))?;
        self.replica_server
            .validate()
            .map_err(|e| anyhow::anyhow!("[replica_server] {e}"))?;
        self.network
            .validate()
            .map_err(|e| anyhow::anyhow!("[network] {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../etc/pegasus.toml");

    #[test]
    fn annotated_example_config_parses_and_matches_defaults() {
        let c = Config::from_toml(EXAMPLE).unwrap();
        // The example documents the defaults; it must not silently differ from them.
        assert_eq!(c, Config::default());
    }

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err =
            Config::from_toml("[pegasus.server]\nrocksdb_write_bufer_size = 1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("rocksdb_write_bufer_size"),
            "{err:#}"
        );
    }

    #[test]
    fn there_is_no_meta_level_on_start_key() {
        // Pegasus's `meta_function_level_on_start` has no counterpart: the level lives in the
        // Raft state (`set_meta_level`), and `lively` is refused there (no load balancer).
        let err = Config::from_toml("[meta_server]\nmeta_function_level_on_start = \"lively\"\n")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("meta_function_level_on_start"),
            "{err:#}"
        );
    }

    #[test]
    fn lease_not_shorter_than_grace_is_rejected() {
        let err = Config::from_toml("[replication]\nfd_lease_ms = 5000\nfd_grace_ms = 5000\n")
            .unwrap_err();
        assert!(format!("{err:#}").contains("fd_grace_ms"), "{err:#}");
    }

    #[test]
    fn invalid_values_are_rejected_with_their_name() {
        let err = Config::from_toml("[pegasus.server]\nrocksdb_compression_type = \"zip\"\n")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("rocksdb_compression_type"),
            "{err:#}"
        );
    }
}
