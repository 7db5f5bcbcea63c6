//! Network partitions between onebox nodes with nftables.
//!
//! Every node of a onebox started with `--ip-per-instance` has its own loopback address and
//! binds its outgoing connections to it, so a rule `ip saddr A ip daddr B drop` in the
//! output hook cuts exactly the link A → B. Rules live in one table of their own, named
//! after the run's base port (parallel runs do not touch each other's rules); healing
//! deletes the table. Dropped packets vanish silently: connects time out, established
//! connections stall in retransmission — what a real partition looks like, and not the
//! instant reset a killed process gives.
//!
//! Only addresses in 127.0.0.0/8 are ever named in a rule.

use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::cluster::run_checked;
use crate::{ChaosError, Result};

/// The chaos table of one run.
#[derive(Debug)]
pub struct Firewall {
    table: String,
    installed: bool,
}

/// Whether `nft` can be run here (the partition nemeses are skipped otherwise).
pub fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn nft(script: &str) -> Result<()> {
    run_checked(Command::new("nft").arg(script).stdin(Stdio::null()))
}

impl Firewall {
    /// The firewall of the run whose ports start at `base_port` (nothing is installed yet).
    pub fn new(base_port: u16) -> Self {
        Self {
            table: format!("pegasus_chaos_{base_port}"),
            installed: false,
        }
    }

    /// Removes a table a crashed earlier run with the same ports may have left behind.
    pub fn reset(&mut self) {
        let _ = nft(&format!("delete table ip {}", self.table));
        self.installed = false;
    }

    /// Drops every packet between the two sides of each pair, both ways.
    pub fn cut(&mut self, pairs: &[(IpAddr, IpAddr)]) -> Result<()> {
        self.add_rules(pairs, "drop")
    }

    fn add_rules(&mut self, pairs: &[(IpAddr, IpAddr)], verdict: &str) -> Result<()> {
        if let Some((a, b)) = pairs
            .iter()
            .find(|(a, b)| !is_loopback(a) || !is_loopback(b) || a == b)
        {
            return Err(ChaosError::Cluster(format!(
                "refusing to cut {a} <-> {b}: only distinct 127.0.0.0/8 addresses"
            )));
        }
        if !self.installed {
            nft(&format!(
                "add table ip {t}; add chain ip {t} out {{ type filter hook output priority 0; policy accept; }}",
                t = self.table
            ))?;
            self.installed = true;
        }
        for (a, b) in pairs {
            nft(&format!(
                "add rule ip {t} out ip saddr {a} ip daddr {b} {verdict}; add rule ip {t} out ip saddr {b} ip daddr {a} {verdict}",
                t = self.table
            ))?;
        }
        Ok(())
    }

    /// Drops `percent` % of the packets between the two sides of each pair, both ways, at
    /// random (TCP retransmits: a lossy link, not a cut one).
    pub fn drop_random(&mut self, pairs: &[(IpAddr, IpAddr)], percent: u8) -> Result<()> {
        self.add_rules(
            pairs,
            &format!("numgen random mod 100 < {} drop", percent.min(100)),
        )
    }

    /// Removes every rule of this run.
    pub fn heal(&mut self) -> Result<()> {
        if !self.installed {
            return Ok(());
        }
        nft(&format!("delete table ip {}", self.table))?;
        self.installed = false;
        Ok(())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = self.heal();
    }
}

fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn refuses_addresses_outside_loopback() {
        let mut fw = Firewall::new(1);
        let outside: IpAddr = "10.0.0.1".parse().unwrap();
        let lo: IpAddr = "127.0.2.1".parse().unwrap();
        assert!(fw.cut(&[(lo, outside)]).is_err());
        assert!(fw.cut(&[(lo, lo)]).is_err());
        // Nothing was installed, so healing has nothing to do.
        assert!(!fw.installed);
        assert!(fw.heal().is_ok());
    }
}
