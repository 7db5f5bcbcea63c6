//! History checkers shared by the deterministic simulator and the chaos harness.
//!
//! [`linearizable`] decides whether a concurrent history of register operations (get, set,
//! check-and-set, incr) on independent keys can be explained by some sequential order that
//! respects real time: the Wing–Gong search with memoisation of (linearized set, state), run
//! per key (linearizability is compositional). Operations whose outcome is unknown (a client
//! timeout) may have taken effect at any time after their invocation, or never.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};

/// The value of a register: absent, or an integer (sets write unique integers; incr adds).
pub type Value = Option<i64>;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Read the value.
    Get,
    /// Write a value.
    Set(i64),
    /// Write `new` if the value equals `expect` (None: if absent).
    Cas {
        /// Expected current value.
        expect: Value,
        /// Value to write.
        new: i64,
    },
    /// Add to the integer value (absent counts as 0).
    Incr(i64),
}

/// What an operation returned, when the client saw a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// A get's value.
    Read(Value),
    /// A set finished.
    Written,
    /// Whether a CAS applied.
    Cas(bool),
    /// An incr's new value.
    Incr(i64),
}

/// One client operation in a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Which register.
    pub key: u64,
    /// What it did.
    pub kind: OpKind,
    /// When it was invoked (any monotonic unit).
    pub invoke: u64,
    /// When it returned and what it returned; `None` when the outcome is unknown (timeout,
    /// connection lost): it may have taken effect at any point after `invoke`, or never.
    /// Operations that definitely did not take effect are left out of the history.
    pub complete: Option<(u64, OpResult)>,
}

/// The register model: the result an operation produces from a state, and the next state.
fn step(state: Value, kind: OpKind) -> (OpResult, Value) {
    match kind {
        OpKind::Get => (OpResult::Read(state), state),
        OpKind::Set(v) => (OpResult::Written, Some(v)),
        OpKind::Cas { expect, new } => {
            if state == expect {
                (OpResult::Cas(true), Some(new))
            } else {
                (OpResult::Cas(false), state)
            }
        }
        OpKind::Incr(d) => {
            let v = state.unwrap_or(0).wrapping_add(d);
            (OpResult::Incr(v), Some(v))
        }
    }
}

/// A history that is not linearizable: the key, and the operations on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The register.
    pub key: u64,
    /// Its operations, in invocation order.
    pub ops: Vec<Op>,
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some real-time-respecting sequential order explains every result.
    Linearizable,
    /// No such order exists for this key.
    Violation(Violation),
    /// The search for a key exceeded its step budget (reported as unknown, not as passing).
    Unknown {
        /// The register.
        key: u64,
    },
}

/// Checks each key independently, registers starting absent. `budget` bounds the search
/// steps per key.
pub fn linearizable(history: &[Op], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, budget) {
            Some(true) => {}
            Some(false) => {
                let mut ops: Vec<Op> = ops.into_iter().cloned().collect();
                ops.sort_by_key(|o| o.invoke);
                return Verdict::Violation(Violation { key, ops });
            }
            None => return Verdict::Unknown { key },
        }
    }
    Verdict::Linearizable
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Call(usize),
    Return(usize),
}

/// Wing–Gong over one key. `Some(true)`: linearizable; `Some(false)`: not; `None`: budget.
#[expect(
    clippy::indexing_slicing,
    reason = "every index is a list position or op index built above, in range by construction"
)]
fn check_key(ops: &[&Op], budget: u64) -> Option<bool> {
    // Events in time order; at equal times, calls before returns (touching intervals overlap).
    let mut events: Vec<(u64, u8, Entry)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, 0, Entry::Call(i)));
        if let Some((t, _)) = op.complete {
            events.push((t.max(op.invoke), 1, Entry::Return(i)));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    let entries: Vec<Entry> = events.into_iter().map(|e| e.2).collect();
    let n = entries.len();
    // A circular doubly linked list over `entries`, with a sentinel at index n.
    let mut next: Vec<usize> = (1..=n).chain([0]).collect();
    let mut prev: Vec<usize> = std::iter::once(n).chain(0..n).collect();
    let mut return_pos = vec![usize::MAX; ops.len()];
    let mut call_pos = vec![usize::MAX; ops.len()];
    for (pos, e) in entries.iter().enumerate() {
        match e {
            Entry::Call(i) => call_pos[*i] = pos,
            Entry::Return(i) => return_pos[*i] = pos,
        }
    }
    let mut returns_left = ops.iter().filter(|o| o.complete.is_some()).count();
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut state: Value = None;
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut cursor = next[n];
    let mut steps = 0u64;

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        prev[b] = a;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        prev[b] = p;
    };

    loop {
        if returns_left == 0 {
            return Some(true);
        }
        steps += 1;
        if steps > budget {
            return None;
        }
        match entries.get(cursor).copied() {
            Some(Entry::Call(i)) => {
                let op = ops[i];
                let (result, new_state) = step(state, op.kind);
                let matches = op.complete.is_none_or(|(_, r)| r == result);
                let mut lin = linearized.clone();
                lin[i / 64] |= 1 << (i % 64);
                if matches && cache.insert((lin.clone(), new_state)) {
                    stack.push((cursor, state));
                    state = new_state;
                    linearized = lin;
                    unlink(&mut next, &mut prev, call_pos[i]);
                    if return_pos[i] != usize::MAX {
                        unlink(&mut next, &mut prev, return_pos[i]);
                        returns_left -= 1;
                    }
                    cursor = next[n];
                } else {
                    cursor = next[cursor];
                }
            }
            // A return of an operation not linearized yet (or the end of the list, which
            // cannot be reached while returns remain): some earlier choice was wrong.
            Some(Entry::Return(_)) | None => {
                let Some((pos, s)) = stack.pop() else {
                    return Some(false);
                };
                state = s;
                let Entry::Call(i) = entries[pos] else {
                    return Some(false);
                };
                linearized[i / 64] &= !(1 << (i % 64));
                if return_pos[i] != usize::MAX {
                    relink(&mut next, &mut prev, return_pos[i]);
                    returns_left += 1;
                }
                relink(&mut next, &mut prev, pos);
                cursor = next[pos];
            }
        }
    }
}

/// Reads that returned a value some acknowledged write had already replaced before the read
/// was invoked — the "stale read" subset of violations, counted over every key.
///
/// Conservative, so every read it counts is a real violation: a read of value `v` is stale
/// when `v` was written by exactly one set or check-and-set that is known to have
/// completed, and another write that definitely took effect (an acknowledged set, a
/// check-and-set that applied, an incr) started after that write completed and completed
/// before the read started. A read of "absent" is stale once any write has completed
/// before it (nothing deletes in these histories). Values produced by incr are not unique,
/// so reads of them are not judged here (the linearizability check still judges them).
pub fn stale_reads(history: &[Op]) -> usize {
    let mut by_key: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op);
    }
    by_key.values().map(|ops| stale_reads_of_key(ops)).sum()
}

fn stale_reads_of_key(ops: &[&Op]) -> usize {
    // Writes that definitely took effect: (invoke, complete).
    let effective: Vec<(u64, u64)> = ops
        .iter()
        .filter_map(|o| match (o.kind, o.complete) {
            (OpKind::Set(_), Some((t, _)))
            | (OpKind::Incr(_), Some((t, _)))
            | (OpKind::Cas { .. }, Some((t, OpResult::Cas(true)))) => Some((o.invoke, t)),
            _ => None,
        })
        .collect();
    // Every write that may have produced a value (unknown outcomes included).
    let mut producers: BTreeMap<i64, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        let written = match (o.kind, o.complete) {
            (OpKind::Set(v), _) => Some(v),
            (OpKind::Cas { new, .. }, Some((_, OpResult::Cas(true))) | None) => Some(new),
            _ => None,
        };
        if let Some(v) = written {
            producers.entry(v).or_default().push(o);
        }
    }
    let replaced_before = |after: u64, before: u64| {
        effective
            .iter()
            .any(|(inv, done)| *inv > after && *done < before)
    };
    ops.iter()
        .filter(|o| match (o.kind, o.complete) {
            (OpKind::Get, Some((_, OpResult::Read(None)))) => {
                effective.iter().any(|(_, done)| *done < o.invoke)
            }
            (OpKind::Get, Some((_, OpResult::Read(Some(v))))) => {
                match producers.get(&v).map(Vec::as_slice) {
                    Some([w]) => match w.complete {
                        Some((done, _)) => replaced_before(done, o.invoke),
                        None => false,
                    },
                    _ => false,
                }
            }
            _ => false,
        })
        .count()
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    fn op(kind: OpKind, invoke: u64, complete: Option<(u64, OpResult)>) -> Op {
        Op {
            key: 1,
            kind,
            invoke,
            complete,
        }
    }

    #[test]
    fn a_read_of_a_value_replaced_before_it_started_is_stale() {
        let h = vec![
            op(OpKind::Set(1), 0, Some((10, OpResult::Written))),
            op(OpKind::Set(2), 20, Some((30, OpResult::Written))),
            op(OpKind::Get, 40, Some((50, OpResult::Read(Some(1))))),
        ];
        assert_eq!(stale_reads(&h), 1);
        assert!(matches!(linearizable(&h, 1000), Verdict::Violation(_)));
    }

    #[test]
    fn overlapping_or_unknown_writes_do_not_make_a_read_stale() {
        // The second set overlaps the read: reading 1 is fine.
        let h = vec![
            op(OpKind::Set(1), 0, Some((10, OpResult::Written))),
            op(OpKind::Set(2), 20, Some((45, OpResult::Written))),
            op(OpKind::Get, 40, Some((50, OpResult::Read(Some(1))))),
        ];
        assert_eq!(stale_reads(&h), 0);
        // The second set's outcome is unknown: it may never have applied.
        let h = vec![
            op(OpKind::Set(1), 0, Some((10, OpResult::Written))),
            op(OpKind::Set(2), 20, None),
            op(OpKind::Get, 40, Some((50, OpResult::Read(Some(1))))),
        ];
        assert_eq!(stale_reads(&h), 0);
    }

    #[test]
    fn reading_absent_after_a_completed_write_is_stale() {
        let h = vec![
            op(OpKind::Incr(1), 0, Some((10, OpResult::Incr(1)))),
            op(OpKind::Get, 20, Some((30, OpResult::Read(None)))),
            op(OpKind::Get, 5, Some((30, OpResult::Read(None)))),
        ];
        assert_eq!(stale_reads(&h), 1);
    }
}
