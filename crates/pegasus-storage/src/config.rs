//! The storage section of the server configuration (`[pegasus.server]`, Pegasus's key names).

use serde::{Deserialize, Serialize};

/// RocksDB tuning and read limits of a replica server. Key names are Pegasus's
/// (`[pegasus.server] rocksdb_*`), so an operator can carry values over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Capacity of the block cache shared by every replica of the process, bytes.
    pub rocksdb_block_cache_capacity: u64,
    /// Memtable size, bytes.
    pub rocksdb_write_buffer_size: u64,
    /// Memtables kept per column family.
    pub rocksdb_max_write_buffer_number: i32,
    /// L0 files that trigger a compaction.
    pub rocksdb_level0_file_num_compaction_trigger: i32,
    /// L0 files at which writes slow down.
    pub rocksdb_level0_slowdown_writes_trigger: i32,
    /// L0 files at which writes stop.
    pub rocksdb_level0_stop_writes_trigger: i32,
    /// LSM levels.
    pub rocksdb_num_levels: i32,
    /// Target SST size, bytes.
    pub rocksdb_target_file_size_base: u64,
    /// L1 size, bytes.
    pub rocksdb_max_bytes_for_level_base: u64,
    /// `"lz4"` or `"none"`.
    pub rocksdb_compression_type: String,
    /// Bloom filter bits per key (0 disables the filter).
    pub rocksdb_bloom_filter_bits_per_key: f64,
    /// RocksDB's `memtable_prefix_bloom_size_ratio`: a hash-key bloom filter in every
    /// memtable, this fraction of `rocksdb_write_buffer_size`, allocated and zeroed when
    /// the memtable is created — empty or not. 0.1 costs 6.4 MB of RSS per replica with
    /// 64 MB write buffers (measured), which a node with thousands of replicas cannot pay;
    /// it only spares memtable lookups of absent hash keys. 0 (the default) turns it off.
    pub rocksdb_memtable_prefix_bloom_size_ratio: f64,
    /// Background flush + compaction threads per RocksDB instance.
    pub rocksdb_max_background_jobs: i32,
    /// Count RocksDB tickers (block cache hits and misses, exported per replica as
    /// metrics): counters only, no timers or histograms. Off by default: RocksDB keeps the
    /// counters per instance and per core, 630 KB of RSS per replica (measured), which a
    /// node with thousands of replicas cannot pay; turn it on where replicas are few.
    pub rocksdb_statistics: bool,
    /// Records a scan RPC may iterate (counting filtered and expired ones).
    pub rocksdb_max_iteration_count: u32,
    /// Records a range multi_get may iterate.
    pub rocksdb_multi_get_max_iteration_count: u32,
    /// Bytes a range multi_get may return.
    pub rocksdb_multi_get_max_iteration_size: u64,
    /// Time an iterating RPC may take before it stops with "incomplete", ms (0 = no limit).
    pub rocksdb_iteration_threshold_time_ms: u64,
    /// How long an idle scan context lives, seconds.
    pub scan_context_ttl_seconds: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            rocksdb_block_cache_capacity: 1 << 30,
            rocksdb_write_buffer_size: 64 << 20,
            rocksdb_max_write_buffer_number: 3,
            rocksdb_level0_file_num_compaction_trigger: 4,
            rocksdb_level0_slowdown_writes_trigger: 30,
            rocksdb_level0_stop_writes_trigger: 60,
            rocksdb_num_levels: 6,
            rocksdb_target_file_size_base: 64 << 20,
            rocksdb_max_bytes_for_level_base: 640 << 20,
            rocksdb_compression_type: "lz4".into(),
            rocksdb_bloom_filter_bits_per_key: 10.0,
            rocksdb_memtable_prefix_bloom_size_ratio: 0.0,
            rocksdb_max_background_jobs: 4,
            rocksdb_statistics: false,
            rocksdb_max_iteration_count: 1000,
            rocksdb_multi_get_max_iteration_count: 3000,
            rocksdb_multi_get_max_iteration_size: 30 << 20,
            rocksdb_iteration_threshold_time_ms: 30_000,
            scan_context_ttl_seconds: 300,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[pegasus.server] {key} = {value}: {reason}")]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// Its value, printed.
    pub value: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl StorageConfig {
    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(key: &'static str, v: i64) -> Result<(), ConfigError> {
            if v > 0 {
                Ok(())
            } else {
                Err(ConfigError {
                    key,
                    value: v.to_string(),
                    reason: "must be positive",
                })
            }
        }
        positive(
            "rocksdb_write_buffer_size",
            self.rocksdb_write_buffer_size as i64,
        )?;
        positive(
            "rocksdb_max_write_buffer_number",
            self.rocksdb_max_write_buffer_number.into(),
        )?;
        positive(
            "rocksdb_level0_file_num_compaction_trigger",
            self.rocksdb_level0_file_num_compaction_trigger.into(),
        )?;
        positive("rocksdb_num_levels", self.rocksdb_num_levels.into())?;
        positive(
            "rocksdb_target_file_size_base",
            self.rocksdb_target_file_size_base as i64,
        )?;
        positive(
            "rocksdb_max_background_jobs",
            self.rocksdb_max_background_jobs.into(),
        )?;
        positive(
            "rocksdb_max_iteration_count",
            self.rocksdb_max_iteration_count.into(),
        )?;
        positive(
            "rocksdb_multi_get_max_iteration_count",
            self.rocksdb_multi_get_max_iteration_count.into(),
        )?;
        if self.rocksdb_level0_slowdown_writes_trigger
            < self.rocksdb_level0_file_num_compaction_trigger
            || self.rocksdb_level0_stop_writes_trigger < self.rocksdb_level0_slowdown_writes_trigger
        {
            return Err(ConfigError {
                key: "rocksdb_level0_slowdown_writes_trigger",
                value: self.rocksdb_level0_slowdown_writes_trigger.to_string(),
                reason: "L0 triggers must satisfy compaction <= slowdown <= stop",
            });
        }
        if !matches!(self.rocksdb_compression_type.as_str(), "lz4" | "none") {
            return Err(ConfigError {
                key: "rocksdb_compression_type",
                value: self.rocksdb_compression_type.clone(),
                reason: "must be \"lz4\" or \"none\"",
            });
        }
        if !(0.0..=64.0).contains(&self.rocksdb_bloom_filter_bits_per_key) {
            return Err(ConfigError {
                key: "rocksdb_bloom_filter_bits_per_key",
                value: self.rocksdb_bloom_filter_bits_per_key.to_string(),
                reason: "must be between 0 and 64",
            });
        }
        if !(0.0..=0.25).contains(&self.rocksdb_memtable_prefix_bloom_size_ratio) {
            return Err(ConfigError {
                key: "rocksdb_memtable_prefix_bloom_size_ratio",
                value: self.rocksdb_memtable_prefix_bloom_size_ratio.to_string(),
                reason: "must be between 0 and 0.25 (RocksDB's limit)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_pegasus_like() {
        let c = StorageConfig::default();
        c.validate().unwrap();
        assert_eq!(c.rocksdb_max_iteration_count, 1000);
        assert_eq!(c.rocksdb_multi_get_max_iteration_count, 3000);
        assert_eq!(c.rocksdb_iteration_threshold_time_ms, 30_000);
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = StorageConfig {
            rocksdb_compression_type: "snappy".into(),
            ..StorageConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "rocksdb_compression_type");
        let c = StorageConfig {
            rocksdb_level0_stop_writes_trigger: 1,
            ..StorageConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
