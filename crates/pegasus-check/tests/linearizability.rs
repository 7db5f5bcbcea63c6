//! The checker accepts what is linearizable, rejects what is not, treats unknown outcomes as
//! "maybe", and agrees with stateright's LinearizabilityTester on random register histories.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use pegasus_check::{linearizable, Op, OpKind, OpResult, Verdict};
use proptest::prelude::*;

fn op(key: u64, kind: OpKind, invoke: u64, complete: Option<(u64, OpResult)>) -> Op {
    Op {
        key,
        kind,
        invoke,
        complete,
    }
}

const BUDGET: u64 = 1_000_000;

#[test]
fn sequential_history_is_linearizable() {
    let h = vec![
        op(1, OpKind::Set(5), 0, Some((1, OpResult::Written))),
        op(1, OpKind::Get, 2, Some((3, OpResult::Read(Some(5))))),
        op(1, OpKind::Incr(2), 4, Some((5, OpResult::Incr(7)))),
        op(
            1,
            OpKind::Cas {
                expect: Some(7),
                new: 9,
            },
            6,
            Some((7, OpResult::Cas(true))),
        ),
        op(
            1,
            OpKind::Cas {
                expect: Some(7),
                new: 10,
            },
            8,
            Some((9, OpResult::Cas(false))),
        ),
        op(1, OpKind::Get, 10, Some((11, OpResult::Read(Some(9))))),
    ];
    assert_eq!(linearizable(&h, BUDGET), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_completed_write_is_a_violation() {
    let h = vec![
        op(1, OpKind::Set(1), 0, Some((1, OpResult::Written))),
        op(1, OpKind::Set(2), 2, Some((3, OpResult::Written))),
        op(1, OpKind::Get, 4, Some((5, OpResult::Read(Some(1))))),
    ];
    assert!(matches!(linearizable(&h, BUDGET), Verdict::Violation(v) if v.key == 1));
}

#[test]
fn concurrent_operations_may_take_effect_in_either_order() {
    let h = vec![
        op(1, OpKind::Set(1), 0, Some((10, OpResult::Written))),
        op(1, OpKind::Set(2), 1, Some((9, OpResult::Written))),
        op(1, OpKind::Get, 11, Some((12, OpResult::Read(Some(1))))),
        op(2, OpKind::Get, 0, Some((5, OpResult::Read(None)))),
        op(2, OpKind::Set(3), 1, Some((6, OpResult::Written))),
    ];
    assert_eq!(linearizable(&h, BUDGET), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_may_or_may_not_have_happened() {
    let happened = vec![
        op(1, OpKind::Set(1), 0, None),
        op(1, OpKind::Get, 5, Some((6, OpResult::Read(Some(1))))),
    ];
    assert_eq!(linearizable(&happened, BUDGET), Verdict::Linearizable);
    let did_not = vec![
        op(1, OpKind::Set(1), 0, None),
        op(1, OpKind::Get, 5, Some((6, OpResult::Read(None)))),
    ];
    assert_eq!(linearizable(&did_not, BUDGET), Verdict::Linearizable);
    // But it cannot take effect before it was invoked.
    let too_early = vec![
        op(1, OpKind::Get, 0, Some((1, OpResult::Read(Some(1))))),
        op(1, OpKind::Set(1), 5, None),
    ];
    assert!(matches!(
        linearizable(&too_early, BUDGET),
        Verdict::Violation(_)
    ));
}

#[test]
fn a_lost_acknowledged_incr_is_a_violation() {
    let h = vec![
        op(7, OpKind::Incr(1), 0, Some((1, OpResult::Incr(1)))),
        op(7, OpKind::Incr(1), 2, Some((3, OpResult::Incr(2)))),
        op(7, OpKind::Incr(1), 4, Some((5, OpResult::Incr(2)))),
    ];
    assert!(matches!(linearizable(&h, BUDGET), Verdict::Violation(_)));
}

#[test]
fn the_budget_turns_a_hard_search_into_unknown() {
    let mut h = Vec::new();
    for i in 0..30 {
        h.push(op(1, OpKind::Set(i), 0, Some((100, OpResult::Written))));
    }
    h.push(op(
        1,
        OpKind::Get,
        101,
        Some((102, OpResult::Read(Some(-1)))),
    ));
    assert_eq!(linearizable(&h, 50), Verdict::Unknown { key: 1 });
}

/// A random concurrent history of register reads and writes: `threads` clients each issue
/// ops one after another; each op takes effect at a random point inside its interval; some
/// outcomes are lost (unknown); with `corrupt`, one read result is altered.
#[derive(Debug, Clone)]
struct Sim {
    ops: Vec<(usize, OpKind, u64, u64, bool)>,
    corrupt: Option<usize>,
}

fn sim() -> impl Strategy<Value = Sim> {
    let one = (
        0usize..3,
        prop_oneof![Just(None), (0i64..3).prop_map(Some)],
        1u64..6,
        0u64..4,
        0u8..10,
    );
    (
        proptest::collection::vec(one, 1..9),
        proptest::option::of(0usize..9),
    )
        .prop_map(|(raw, corrupt)| {
            let ops = raw
                .into_iter()
                .map(|(t, w, len, gap, unknown)| {
                    let kind = match w {
                        Some(v) => OpKind::Set(v),
                        None => OpKind::Get,
                    };
                    (t, kind, len, gap, unknown == 0)
                })
                .collect();
            Sim { ops, corrupt }
        })
}

/// Runs the simulation: returns our history and the same history fed to stateright.
fn run(sim: &Sim) -> (Vec<Op>, bool) {
    use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

    // Lay the ops out per thread, then pick linearization points and compute results.
    let mut clock = [0u64; 3];
    let mut planned = Vec::new();
    for (i, (t, kind, len, gap, unknown)) in sim.ops.iter().enumerate() {
        let start = clock[*t] + gap;
        let end = start + len;
        clock[*t] = end + 1;
        let lin = start * 2 + 1 + (i as u64 % (len * 2 - 1).max(1));
        planned.push((i, *t, *kind, start * 2, end * 2, lin, *unknown));
    }
    // A client whose op has an unknown outcome issues nothing after it.
    let mut stopped = [false; 3];
    planned.retain(|p| {
        let keep = !stopped[p.1];
        if p.6 {
            stopped[p.1] = true;
        }
        keep
    });
    for (n, p) in planned.iter_mut().enumerate() {
        p.0 = n;
    }
    let mut by_lin = planned.clone();
    by_lin.sort_by_key(|p| p.5);
    let mut value: Option<i64> = None;
    let mut results = vec![None; planned.len()];
    for (i, _, kind, ..) in &by_lin {
        results[*i] = Some(match kind {
            OpKind::Set(v) => {
                value = Some(*v);
                OpResult::Written
            }
            _ => OpResult::Read(value),
        });
    }
    if let Some(c) = sim.corrupt {
        if let Some(Some(OpResult::Read(v))) = results.get_mut(c) {
            *v = Some(v.map_or(99, |x| x + 100));
        }
    }
    // Our history.
    let history: Vec<Op> = planned
        .iter()
        .map(|(i, _, kind, s, e, _, unknown)| Op {
            key: 1,
            kind: *kind,
            invoke: *s,
            complete: if *unknown {
                None
            } else {
                Some((*e, results[*i].unwrap()))
            },
        })
        .collect();
    // stateright: the same events in time order.
    let mut tester = LinearizabilityTester::new(Register(-1i64));
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, _, _, s, e, _, unknown) in &planned {
        events.push((*s, 0, *i));
        if !*unknown {
            events.push((*e, 1, *i));
        }
    }
    events.sort();
    let mut ok = true;
    for (_, kind, i) in events {
        let (_, t, op, ..) = planned[i];
        if kind == 0 {
            let rop = match op {
                OpKind::Set(v) => RegisterOp::Write(v),
                _ => RegisterOp::Read,
            };
            ok &= tester.on_invoke(t, rop).is_ok();
        } else {
            let ret = match results[i].unwrap() {
                OpResult::Read(v) => RegisterRet::ReadOk(v.unwrap_or(-1)),
                _ => RegisterRet::WriteOk,
            };
            ok &= tester.on_return(t, ret).is_ok();
        }
    }
    (history, ok && tester.is_consistent())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_stateright_on_random_register_histories(s in sim()) {
        let (mut history, theirs) = run(&s);
        // stateright starts the register at -1 (never written): map it to "absent".
        for op in &mut history {
            if let Some((_, OpResult::Read(Some(-1)))) = op.complete {
                op.complete = op.complete.map(|(t, _)| (t, OpResult::Read(None)));
            }
        }
        let ours = linearizable(&history, BUDGET);
        let unknown = matches!(ours, Verdict::Unknown { .. });
        prop_assert!(!unknown, "search budget exceeded");
        prop_assert_eq!(ours == Verdict::Linearizable, theirs, "history {:?}", history);
    }

    #[test]
    fn histories_generated_from_a_real_execution_are_linearizable(s in sim()) {
        let s = Sim { corrupt: None, ..s };
        let (history, _) = run(&s);
        prop_assert_eq!(linearizable(&history, BUDGET), Verdict::Linearizable);
    }
}
