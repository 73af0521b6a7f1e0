//! The search for a linearization of one partition: Wing & Gong's backtracking with Lowe's
//! memoisation, as in Porcupine and Knossos' "linear" checker.
//!
//! Call and return events are kept in a doubly linked list in real-time order. Scanning from
//! the front, a call event is a candidate to linearize next: if the model accepts it in the
//! current state and the pair (set of linearized operations, resulting state) was never reached
//! before, the operation is linearized, its events are unlinked, and the scan restarts. Reaching
//! a return event means that operation had to be linearized already: backtrack. Operations with
//! an unknown outcome have no return event (they may be linearized at any point after their
//! call, or never), so the search succeeds once every operation *with* a known outcome is
//! linearized.

use std::collections::HashSet;
use std::time::Instant;

use crate::history::Operation;
use crate::model::{self, State};

/// Limits on the work a check may do. The step count makes a check's verdict deterministic;
/// the deadline protects interactive callers.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Maximum search steps (event visits), over all partitions.
    pub max_steps: u64,
    /// Maximum memoised (linearized set, state) pairs in one partition.
    pub max_cache_entries: usize,
    /// Wall-clock deadline, if any.
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_steps: 50_000_000,
            max_cache_entries: 5_000_000,
            deadline: None,
        }
    }
}

/// What the search of one partition concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SearchResult {
    Linearizable,
    /// No linearization exists. `longest` is the longest prefix of a linearization that was
    /// found (indexes into the partition's operations), and `stuck` the operation whose return
    /// blocked it from growing.
    NotLinearizable {
        longest: Vec<usize>,
        stuck: usize,
    },
    /// The budget ran out.
    Exhausted,
}

const NONE: usize = usize::MAX;
/// How often (in steps) the deadline is looked at; `Instant::now` is not free.
const DEADLINE_CHECK_INTERVAL: u64 = 4096;

/// A fixed-size bit set of linearized operations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The event list: nodes `0..n_events` are events, node `n_events` is the head sentinel.
struct EventList {
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call node, its return node (or NONE for an unknown outcome).
    partner: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
    head: usize,
}

impl EventList {
    fn new(ops: &[&Operation]) -> Self {
        // (time, 0 = call / 1 = return, op index): calls sort before returns at equal times,
        // so operations that touch in time count as concurrent (the permissive reading).
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, 0, i));
            if let Some(t) = op.return_time() {
                events.push((t, 1, i));
            }
        }
        events.sort_unstable();
        let n = events.len();
        let mut list = EventList {
            op: events.iter().map(|e| e.2).collect(),
            is_call: events.iter().map(|e| e.1 == 0).collect(),
            partner: vec![NONE; n],
            prev: vec![NONE; n + 1],
            next: vec![NONE; n + 1],
            head: n,
        };
        let mut return_node = vec![NONE; ops.len()];
        for (node, e) in events.iter().enumerate() {
            if e.1 == 1 {
                return_node[e.2] = node;
            }
        }
        for (node, e) in events.iter().enumerate() {
            if e.1 == 0 {
                list.partner[node] = return_node[e.2];
            }
        }
        let mut last = list.head;
        for node in 0..n {
            list.next[last] = node;
            list.prev[node] = last;
            last = node;
        }
        list
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NONE {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NONE {
            self.prev[n] = node;
        }
    }

    /// Removes a call and its return. Must be undone by `unlift` in LIFO order.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if self.partner[call] != NONE {
            self.unlink(self.partner[call]);
        }
    }

    fn unlift(&mut self, call: usize) {
        if self.partner[call] != NONE {
            self.relink(self.partner[call]);
        }
        self.relink(call);
    }
}

/// Searches for a linearization of `ops` starting from `initial`, charging `steps`.
pub(crate) fn search(
    ops: &[&Operation],
    initial: &State,
    budget: &Budget,
    steps: &mut u64,
) -> SearchResult {
    let mut list = EventList::new(ops);
    let mut remaining_known = ops.iter().filter(|o| o.return_time().is_some()).count();
    let mut linearized = Bits::new(ops.len());
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = initial.clone();
    let mut best: (Vec<usize>, usize) = (Vec::new(), NONE);
    let mut entry = list.next[list.head];

    while remaining_known > 0 {
        *steps += 1;
        if *steps > budget.max_steps || cache.len() > budget.max_cache_entries {
            return SearchResult::Exhausted;
        }
        if steps.is_multiple_of(DEADLINE_CHECK_INTERVAL) {
            if let Some(deadline) = budget.deadline {
                if Instant::now() >= deadline {
                    return SearchResult::Exhausted;
                }
            }
        }
        if entry != NONE && list.is_call[entry] {
            let i = list.op[entry];
            if let Some(next_state) = model::step(&state, &ops[i].input, ops[i].output()) {
                linearized.set(i);
                if cache.insert((linearized.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    list.lift(entry);
                    if list.partner[entry] != NONE {
                        remaining_known -= 1;
                    }
                    entry = list.next[list.head];
                    continue;
                }
                linearized.clear(i);
            }
            entry = list.next[entry];
            continue;
        }
        // A return (or the end of the list, reachable only if every remaining known operation
        // was skipped, which cannot be: its return event is still in the list).
        debug_assert!(entry != NONE, "end of list with known operations left");
        if entry != NONE && (best.1 == NONE || stack.len() > best.0.len()) {
            best = (
                stack.iter().map(|(call, _)| list.op[*call]).collect(),
                list.op[entry],
            );
        }
        let Some((call, previous)) = stack.pop() else {
            return SearchResult::NotLinearizable {
                longest: best.0,
                stuck: best.1,
            };
        };
        let i = list.op[call];
        linearized.clear(i);
        state = previous;
        list.unlift(call);
        if list.partner[call] != NONE {
            remaining_known += 1;
        }
        entry = list.next[call];
    }
    SearchResult::Linearizable
}
