//! The simulated network: loss, delay, duplication, reordering, cuts between arbitrary sets
//! of nodes and meta (partitions), and late deliveries of messages that sat in a socket
//! buffer through a cut.

use super::*;

pub(crate) fn kind_of(msg: &Msg) -> &'static str {
    match msg {
        Msg::Peer(_, p) => match p {
            PeerMessage::Prepare { .. } => "Prepare",
            PeerMessage::PrepareAck { .. } => "PrepareAck",
            PeerMessage::GroupCheck { .. } => "GroupCheck",
            PeerMessage::GroupCheckAck { .. } => "GroupCheckAck",
            PeerMessage::AddLearner { .. } => "AddLearner",
            PeerMessage::Learn { .. } => "Learn",
            PeerMessage::LearnResponse(_) => "LearnResponse",
            PeerMessage::LearnCompleted { .. } => "LearnCompleted",
        },
        Msg::Beacon { .. } => "Beacon",
        Msg::BeaconAck { .. } => "BeaconAck",
        Msg::Config(_) => "Config",
        Msg::Proposal { .. } => "Proposal",
        Msg::ConfigRequest { .. } => "ConfigRequest",
        Msg::ConfigRejected(_) => "ConfigRejected",
        Msg::ClientRequest { .. } => "ClientRequest",
        Msg::ClientReply { .. } => "ClientReply",
    }
}

impl Sim {
    pub(crate) fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        let node_of = |a: Addr| match a {
            Addr::Node(n) => Some(n),
            _ => None,
        };
        let cut = self
            .cuts
            .values()
            .any(|side| side.contains(&from) != side.contains(&to));
        let is_client = matches!(from, Addr::Client(_)) || matches!(to, Addr::Client(_));
        if cut && !is_client {
            // Most messages across a cut are lost; some sat in a socket buffer and arrive
            // late, after meta may have acted on the silence (TCP after the link heals).
            if self.rng.chance(250) {
                let late = self.now + self.rng.range(GRACE_MS / 2, 2 * GRACE_MS);
                self.deliver_at(late, from, to, msg);
            }
            return;
        }
        if let Some(rule) = self.drop_rule.as_mut() {
            if rule(node_of(from), node_of(to), kind_of(&msg)) {
                return;
            }
        }
        if self.faults_on && self.rng.chance(self.drop_permille) {
            return;
        }
        let delay = if self.faults_on && !is_client && self.rng.chance(self.drop_permille / 10) {
            // A message that sat in a socket buffer through a partition and arrives after
            // meta has acted on the silence (a TCP retransmission after the link heals).
            self.rng.range(GRACE_MS / 2, 2 * GRACE_MS)
        } else if self.faults_on {
            self.rng.range(1, 20)
        } else {
            1
        };
        // Duplicated delivery (a retransmission that raced the original) between servers. A
        // client request is not duplicated: a retried non-idempotent write is a new write.
        if self.faults_on && !is_client && self.rng.chance(self.drop_permille / 2) {
            let again = self.now + self.rng.range(1, 40);
            self.deliver_at(again, from, to, msg.clone());
        }
        self.deliver_at(self.now + delay, from, to, msg);
    }

    pub(crate) fn deliver_at(&mut self, t: u64, from: Addr, to: Addr, msg: Msg) {
        let msg = Box::new(msg);
        self.at(t, Ev::Deliver { from, to, msg });
    }
}
