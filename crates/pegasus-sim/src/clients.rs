//! The clients: closed-loop operations on keys spread over every table (reads, sets, incrs,
//! compare-and-sets) with timeouts, their routing (a cached primary per partition, asked of
//! meta again after an error or a timeout), and the history the linearizability checker
//! reads.

use super::*;

impl Sim {
    pub(crate) fn client_next(&mut self, client: u64) {
        if self.now >= self.opts.fault_ms + self.opts.heal_ms {
            return;
        }
        let key = self.rng.below(self.opts.keys);
        let kind = match self.rng.below(10) {
            0..=3 => OpKind::Get,
            4..=5 => {
                let v = self.next_value;
                self.next_value += 1;
                OpKind::Set(v)
            }
            6..=7 => {
                let v = self.next_value;
                self.next_value += 1;
                let expect = if self.rng.chance(200) {
                    None
                } else {
                    Some(self.rng.range(0, (self.next_value - 1).max(0) as u64) as i64)
                };
                OpKind::Cas { expect, new: v }
            }
            _ => OpKind::Incr(self.rng.range(1, 3) as i64),
        };
        self.issue(client, key, kind);
    }

    pub(crate) fn issue(&mut self, client: u64, key: u64, kind: OpKind) {
        let op = self.next_op;
        self.next_op += 1;
        self.report.ops += 1;
        self.history.push(Op {
            key,
            kind,
            invoke: self.now,
            complete: None,
        });
        let gpid = self.key_gpid.get(key as usize).copied().unwrap_or(FIRST);
        self.pending.insert(
            op,
            PendingOp {
                client,
                gpid,
                index: self.history.len() - 1,
            },
        );
        let request = match kind {
            OpKind::Get => ClientOp::Get(key),
            k => ClientOp::Write(key, k),
        };
        // Like a real client, route by a cached configuration and ask meta again only
        // after an error or a timeout: a deposed primary may still be asked.
        let target = match self.client_routes.get(&(client, gpid)) {
            Some(p) => Some(*p),
            None => self.meta.configs.get(&gpid).and_then(|c| c.primary),
        };
        if let Some(p) = target {
            self.client_routes.insert((client, gpid), p);
        }
        match target {
            Some(p) => self.send(
                Addr::Client(client),
                Addr::Node(p),
                Msg::ClientRequest { op, gpid, request },
            ),
            None => {
                let t = self.now + 1;
                self.at(
                    t,
                    Ev::Deliver {
                        from: Addr::Meta,
                        to: Addr::Client(client),
                        msg: Box::new(Msg::ClientReply {
                            op,
                            result: None,
                            definite_failure: true,
                        }),
                    },
                );
            }
        }
        let t = self.now + CLIENT_TIMEOUT_MS;
        self.at(t, Ev::ClientTimeout(op));
    }

    pub(crate) fn on_client_reply(
        &mut self,
        op: u64,
        result: Option<OpResult>,
        definite_failure: bool,
    ) {
        let Some(p) = self.pending.remove(&op) else {
            return;
        };
        match result {
            Some(r) => {
                self.report.ok += 1;
                if let Some(h) = self.history.get_mut(p.index) {
                    h.complete = Some((self.now, r));
                }
            }
            None if definite_failure => {
                self.client_routes.remove(&(p.client, p.gpid));
                // Definitely not applied: not part of the history.
                if let Some(h) = self.history.get_mut(p.index) {
                    h.key = u64::MAX;
                }
            }
            None => {
                self.client_routes.remove(&(p.client, p.gpid));
                self.report.unknown += 1;
            }
        }
        let t = self.now + self.rng.range(1, 30);
        self.at(t, Ev::ClientNext(p.client));
    }

    pub(crate) fn on_client_timeout(&mut self, op: u64) {
        if let Some(p) = self.pending.remove(&op) {
            self.client_routes.remove(&(p.client, p.gpid));
            self.report.unknown += 1;
            let t = self.now + 1;
            self.at(t, Ev::ClientNext(p.client));
        }
    }
}
