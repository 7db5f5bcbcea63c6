//! The fault schedule, drawn from the seed while faults are on: crashes and power loss
//! (unsynced bytes lost or torn), pauses past the lease, network partitions (one node cut
//! off, or the cluster split into two arbitrary sides with meta on either), message loss,
//! and a node's disk full (ENOSPC) or out of descriptors (EMFILE) for a while. Failed
//! checkpoint fetches are drawn where fetches happen (`nodes`), delays, duplicates and late
//! deliveries in `network`.

use super::*;
use pegasus_storage::error::{EMFILE, ENOSPC};

impl Sim {
    /// Crashes a running node with a torn tail of a random share of its unsynced bytes and
    /// schedules its restart 0.5–6 s later. False if it was not up.
    fn crash_and_restart_later(&mut self, id: NodeId) -> bool {
        let tear = self.rng.below(1001) as u16;
        let crashed = self.crash_with(
            id,
            CrashMode::TearUnsynced {
                keep_permille: tear,
            },
        );
        if crashed {
            let back = self.now + self.rng.range(500, 6_000);
            self.at(back, Ev::Restart(id));
        }
        crashed
    }

    /// Cuts `side` off from every other endpoint for `ms`.
    fn cut(&mut self, side: BTreeSet<Addr>, ms: u64) {
        self.next_cut += 1;
        let id = self.next_cut;
        let what = format!("cut {side:?} off for {ms}");
        self.trace(|| what);
        self.cuts.insert(id, side);
        self.at(self.now + ms, Ev::Heal(id));
    }

    /// Makes every file operation of a node fail with `code` (None: they work again), for
    /// its current replicas and those it creates meanwhile.
    pub(crate) fn set_disk_error(&mut self, id: NodeId, code: Option<i32>) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.disk_error = code;
            for r in n.replicas.values() {
                r.fs.set_fail_os_error(code);
            }
            n.nlog.fs.set_fail_os_error(code);
        }
    }

    /// The end of the fault period: the network heals, disks work, loss stops.
    pub(crate) fn faults_off(&mut self) {
        self.faults_on = false;
        self.cuts.clear();
        self.drop_permille = 0;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.set_disk_error(id, None);
        }
    }

    pub(crate) fn inject_fault(&mut self) {
        if !self.faults_on || self.now >= self.opts.fault_ms {
            return;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let victim = ids
            .get(self.rng.below(ids.len() as u64) as usize)
            .copied()
            .unwrap_or(NodeId(1));
        match self.rng.below(8) {
            0 if self.opts.power_loss && self.rng.below(3) == 0 => {
                // Power loss everywhere at once: every node loses or tears what it had not
                // synced, and comes back after its own delay.
                for id in ids {
                    self.crash_and_restart_later(id);
                }
                self.trace(|| "power loss on every node".to_string());
            }
            // Crash: unsynced bytes are lost or torn; storage loses what it did not flush.
            0 if self.crash_and_restart_later(victim) => {
                self.trace(|| format!("crash {victim}"));
            }
            1 => {
                // Pause longer than the lease, sometimes longer than the grace period.
                let d = self.rng.range(1_000, 6_000);
                if let Some(n) = self.nodes.get_mut(&victim) {
                    n.paused_until = n.paused_until.max(self.now + d);
                }
                self.trace(|| format!("pause {victim} for {d}"));
            }
            2 => {
                let d = self.rng.range(500, 5_000);
                self.cut([Addr::Node(victim)].into(), d);
            }
            3 => {
                self.drop_permille = self.rng.range(0, 150);
            }
            4 if ids.len() > 2 => {
                // Split the cluster: a random set of nodes, with meta or without, on one
                // side; the rest on the other.
                let mut side: BTreeSet<Addr> = BTreeSet::new();
                for id in &ids {
                    if self.rng.chance(500) {
                        side.insert(Addr::Node(*id));
                    }
                }
                if self.rng.chance(500) {
                    side.insert(Addr::Meta);
                }
                let d = self.rng.range(500, 5_000);
                if !side.is_empty() && side.len() < ids.len() + 1 {
                    self.cut(side, d);
                }
            }
            5 => {
                // The disk fills up, or the process runs out of descriptors, for a while:
                // writes fail with a definite error; nothing may be wiped for it.
                let code = if self.rng.chance(700) { ENOSPC } else { EMFILE };
                let d = self.rng.range(300, 4_000);
                self.trace(|| format!("{victim} disk error {code} for {d}"));
                self.set_disk_error(victim, Some(code));
                self.at(self.now + d, Ev::DiskBack(victim));
            }
            _ => {}
        }
        let next = self.now + self.rng.range(300, 2_000);
        self.at(next, Ev::Fault);
    }
}
