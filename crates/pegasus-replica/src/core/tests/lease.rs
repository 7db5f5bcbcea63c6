//! The lease and the clock: the node lease's epochs as a primary takes them, and quiet
//! primaries that need no tick.

use super::*;

fn lease_event(l: NodeLease) -> Event {
    Event::Lease {
        epoch: l.epoch,
        until_ms: l.until_ms,
    }
}

#[test]
fn a_primary_whose_lease_lapsed_steps_down_before_renewing_it() {
    let mut r = primary();
    // The node's lease `primary()` took: epoch 1 until 1 s.
    let mut lease = NodeLease {
        epoch: 1,
        until_ms: 1_000,
    };
    lease.renew(500, 2_000, 510);
    r.handle(lease_event(lease));
    assert_eq!(r.status(), Status::Primary, "renewed before it lapsed");
    assert!(r.can_read(1_000).is_ok());
    assert!(r.can_read(2_000).is_err(), "no reads at or past the lease");
    // Paused past the lease: a beacon sent after it lapsed is acknowledged.
    lease.renew(5_000, 7_000, 5_010);
    r.handle(lease_event(lease));
    assert_eq!(r.status(), Status::Inactive);
    assert!(r.can_read(5_500).is_err());
}

#[test]
fn a_primary_resuming_from_a_pause_steps_down_even_if_its_last_beacon_was_timely() {
    let mut r = primary();
    let mut lease = NodeLease {
        epoch: 1,
        until_ms: 1_000,
    };
    // The beacon left while the lease held, but the node paused before the replica took
    // the renewal; meta may have failed it over before acknowledging.
    lease.renew(900, 2_900, 4_000);
    r.handle(lease_event(lease));
    assert_eq!(r.status(), Status::Inactive);
    assert!(r.can_read(2_000).is_err());
}

#[test]
fn a_primary_that_slept_through_timely_renewals_keeps_its_role() {
    let mut r = primary();
    let mut lease = NodeLease {
        epoch: 1,
        until_ms: 1_000,
    };
    // The node renewed every second (2 s leases) while the replica slept; it takes the
    // latest lease at 9.1 s, long after the one it held ran out.
    for sent in (500..9_000).step_by(1_000) {
        lease.renew(sent, sent + 2_000, sent + 5);
    }
    assert_eq!(lease.epoch, 1);
    r.handle(lease_event(lease));
    r.handle(Event::Tick {
        now_ms: 9_100,
        wall_us: WALL,
    });
    assert_eq!(r.status(), Status::Primary);
    assert_eq!(r.read_grant(), ReadGrant::Epoch(1));
}

#[test]
fn a_quiet_primary_sends_no_group_checks_until_something_changes() {
    let mut r = primary();
    let interval = ReplicaOptions::default().group_check_interval_ms;
    let lease = |until_ms| Event::Lease { epoch: 1, until_ms };
    let group_checks = |out: &[Action]| {
        out.iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send {
                        msg: PeerMessage::GroupCheck { .. },
                        ..
                    }
                )
            })
            .count()
    };
    // The first check after becoming primary goes out; S acknowledges it.
    let mut now = interval;
    r.handle(lease(u64::MAX));
    let out = r.handle(Event::Tick {
        now_ms: now,
        wall_us: WALL,
    });
    assert_eq!(group_checks(&out), 1);
    assert!(!r.is_quiet(), "waiting for the acknowledgement");
    r.handle(Event::Message {
        from: S,
        msg: PeerMessage::GroupCheckAck {
            ballot: 2,
            ok: true,
        },
    });
    assert!(r.is_quiet());
    assert_eq!(r.next_deadline_ms(), None, "a quiet primary needs no tick");
    now += 10 * interval;
    let out = r.handle(Event::Tick {
        now_ms: now,
        wall_us: WALL,
    });
    assert_eq!(group_checks(&out), 0);
    // A write ends the quiet: the next check carries its commit.
    r.handle(Event::ClientWrite {
        id: 1,
        update: Bytes::from_static(b"w"),
    });
    assert!(!r.is_quiet());
    assert!(r.next_deadline_ms().is_some());
}
