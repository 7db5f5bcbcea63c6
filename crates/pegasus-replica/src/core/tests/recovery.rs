//! A replica reopened from its own files: what its log says was committed is applied
//! before it takes any role.

use super::*;

/// Decrees 1..=n logged at ballot 1, each carrying the commit point before it.
fn logged(n: Decree) -> Vec<Mutation> {
    (1..=n)
        .map(|d| Mutation {
            ballot: 1,
            decree: d,
            last_committed: d - 1,
            timestamp_us: WALL + d as u64,
            updates: Vec::new(),
        })
        .collect()
}

/// Decrees 1 and 2 from ballot 1 (decree 2 saying 1 committed), decree 3 from ballot 2
/// saying 2 committed.
fn two_ballots() -> Vec<Mutation> {
    let mut log = logged(2);
    log.push(Mutation {
        ballot: 2,
        decree: 3,
        last_committed: 2,
        timestamp_us: WALL + 3,
        updates: Vec::new(),
    });
    log
}

#[test]
fn a_reopened_replica_commits_from_its_own_log_what_the_log_says_was_committed() {
    // Storage lost its unflushed writes (it holds decree 0); the log holds more decrees
    // than a new primary may re-propose, their piggybacked commit points up to n - 1.
    let n = ReplicaOptions::default().max_prepare_gap + 1_000;
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(1, &[]), 0, logged(n));
    let out = r.catch_up_from_log();
    assert_eq!(commits(&out), (1..n).collect::<Vec<_>>());
    assert_eq!(r.last_committed(), n - 1);
    // The last decree's commit is unknown: it stays prepared, and the replica can lead.
    take_over_after_restart(&mut r, WALL + n as u64 + 1);
    assert_eq!(r.status(), Status::Primary);
}

#[test]
fn catching_up_stops_at_a_hole_in_the_log() {
    let mut log = logged(10);
    log.retain(|m| m.decree != 6);
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(1, &[]), 0, log);
    assert_eq!(commits(&r.catch_up_from_log()), vec![1, 2, 3, 4, 5]);
    assert_eq!(r.last_committed(), 5);
}

#[test]
fn a_superseded_record_of_the_entrys_ballot_vouches_for_it() {
    // Decree 2 is held from ballot 1, whose primary committed it (a ballot-1 record, since
    // superseded by ballot 2's record for decree 3, said so); ballot 2 only says 2 too.
    let log = two_ballots();
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(2, &[]), 0, log);
    r.note_commit_points([(1, 2), (2, 2)].into_iter().collect());
    assert_eq!(commits(&r.catch_up_from_log()), vec![1, 2]);
}

#[test]
fn an_entry_older_than_the_ballot_that_vouches_for_its_commit_is_not_committed() {
    // Decree 2 is held from ballot 1 (a proposal that may never have committed); decree 3
    // from ballot 2 says 2 was committed — as ballot 2 wrote it, which this copy lacks.
    let log = two_ballots();
    let mut r = Replica::new(ME, ReplicaOptions::default(), config(2, &[]), 0, log);
    assert_eq!(commits(&r.catch_up_from_log()), vec![1]);
    assert_eq!(r.last_committed(), 1);
}
