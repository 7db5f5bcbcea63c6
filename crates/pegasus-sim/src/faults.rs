//! The fault schedule: crashes, power loss, pauses, partitions, message loss and log I/O
//! errors, drawn from the seed while faults are on.

use super::*;

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

    pub(crate) fn inject_fault(&mut self) {
        if !self.faults_on || self.now >= self.opts.fault_ms {
            return;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let victim = ids
            .get(self.rng.below(ids.len() as u64) as usize)
            .copied()
            .unwrap_or(NodeId(1));
        match self.rng.below(6) {
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
                self.partitioned.insert(victim);
                let d = self.rng.range(500, 5_000);
                self.trace(|| format!("isolate {victim} for {d}"));
                self.at(self.now + d, Ev::Heal);
            }
            3 => {
                self.drop_permille = self.rng.range(0, 150);
            }
            _ => {}
        }
        let next = self.now + self.rng.range(300, 2_000);
        self.at(next, Ev::Fault);
    }
}
