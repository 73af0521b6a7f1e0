//! Simulated clients: each issues one operation at a time (register operations on a small key
//! set, or the bank workload), through the member it believes leads, with a timeout, and
//! records invocations and outcomes for the linearizability checker.

use quorum_lincheck::{Compare, Input, OpId, Output, Recorder, State, TxnOp};
use quorum_raft::NodeId;

use crate::member::ClientRequest;
use crate::rng::SimRng;

/// Keys of the register workload.
pub const REGISTER_KEYS: usize = 4;
/// Accounts of the bank workload.
pub const ACCOUNTS: usize = 4;
/// Each account's starting balance.
pub const INITIAL_BALANCE: u64 = 100;

/// Which operations clients issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// get / put / cas / delete on [`REGISTER_KEYS`] keys.
    Register,
    /// Transfers (one CAS transaction) and reads of all accounts.
    Bank,
}

/// The name of register key `i`.
pub fn register_key(i: usize) -> String {
    format!("k{i}")
}

/// The name of account `i`.
pub fn account(i: usize) -> String {
    format!("acct{i}")
}

/// The state the store starts in for `workload`.
pub fn initial_state(workload: Workload) -> State {
    match workload {
        Workload::Register => State::new(),
        Workload::Bank => (0..ACCOUNTS)
            .map(|i| (account(i), INITIAL_BALANCE.to_string()))
            .collect(),
    }
}

/// The read of all accounts.
pub fn read_all() -> Input {
    Input::Txn {
        compares: vec![],
        success: (0..ACCOUNTS)
            .map(|i| TxnOp::Get { key: account(i) })
            .collect(),
        failure: vec![],
    }
}

/// The total of a read-all answer, or `None` if a balance is missing or malformed.
pub fn bank_total(output: &Output) -> Option<u64> {
    match output {
        Output::Txn { reads, .. } => reads
            .iter()
            .map(|r| r.as_ref().and_then(|v| v.parse::<u64>().ok()))
            .sum(),
        _ => None,
    }
}

/// A client's operation in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The request as sent.
    pub request: ClientRequest,
    /// Where it was sent.
    pub target: NodeId,
    /// When it times out.
    pub deadline: u64,
}

/// One simulated client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Client id (also its process number in the history).
    pub id: u64,
    seq: u64,
    /// The operation in flight, if any.
    pub in_flight: Option<InFlight>,
    /// The member this client will try next.
    pub believed_leader: NodeId,
    balances: Option<Vec<u64>>,
    writes: u64,
}

impl Client {
    /// A new idle client.
    pub fn new(id: u64) -> Self {
        Client {
            id,
            seq: 0,
            in_flight: None,
            believed_leader: 1,
            balances: None,
            writes: 0,
        }
    }

    /// Chooses the next operation.
    pub fn next_input(&mut self, rng: &mut SimRng, workload: Workload) -> Input {
        match workload {
            Workload::Register => {
                let key = register_key(rng.below(REGISTER_KEYS as u64) as usize);
                self.writes += 1;
                let value = format!("c{}-{}", self.id, self.writes);
                match rng.below(10) {
                    0..=3 => Input::Get { key },
                    4..=6 => Input::Put { key, value },
                    7 | 8 => {
                        let expected = match rng.below(3) {
                            0 => None,
                            _ => Some(format!(
                                "c{}-{}",
                                rng.below(4) + 1,
                                rng.range(1, self.writes + 1)
                            )),
                        };
                        Input::Cas {
                            key,
                            expected,
                            new: value,
                        }
                    }
                    _ => Input::Delete { key },
                }
            }
            Workload::Bank => match &self.balances {
                Some(bal) if rng.below(3) != 0 => {
                    let from = rng.below(ACCOUNTS as u64) as usize;
                    let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
                    let amount = rng.range(0, bal[from].min(20) + 1);
                    Input::Txn {
                        compares: vec![
                            Compare {
                                key: account(from),
                                value: Some(bal[from].to_string()),
                            },
                            Compare {
                                key: account(to),
                                value: Some(bal[to].to_string()),
                            },
                        ],
                        success: vec![
                            TxnOp::Put {
                                key: account(from),
                                value: (bal[from] - amount).to_string(),
                            },
                            TxnOp::Put {
                                key: account(to),
                                value: (bal[to] + amount).to_string(),
                            },
                        ],
                        failure: vec![],
                    }
                }
                _ => read_all(),
            },
        }
    }

    /// Starts `input` at `now`, recording the invocation. Returns the request to send.
    pub fn start(
        &mut self,
        recorder: &mut Recorder,
        input: Input,
        target: NodeId,
        now: u64,
        timeout: u64,
    ) -> ClientRequest {
        debug_assert!(self.in_flight.is_none(), "one operation at a time");
        self.seq += 1;
        let op_id: OpId = recorder.invoke(self.id, input.clone(), now);
        let request = ClientRequest {
            client: self.id,
            seq: self.seq,
            op_id,
            input,
        };
        self.in_flight = Some(InFlight {
            request: request.clone(),
            target,
            deadline: now + timeout,
        });
        request
    }

    /// Learns balances from a read-all answer (bank workload); a transfer's outcome makes the
    /// cached balances stale, so they are dropped.
    pub fn observe(&mut self, input: &Input, output: &Output) {
        if *input == read_all() {
            if let Output::Txn { reads, .. } = output {
                self.balances = reads
                    .iter()
                    .map(|r| r.as_ref().and_then(|v| v.parse().ok()))
                    .collect();
            }
        } else if matches!(input, Input::Txn { .. }) {
            self.balances = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_transfers_conserve_the_total_and_need_a_read_first() {
        let mut rng = SimRng::new(11);
        let mut c = Client::new(1);
        assert_eq!(c.next_input(&mut rng, Workload::Bank), read_all());
        let out = Output::Txn {
            succeeded: true,
            reads: vec![Some("100".into()); ACCOUNTS],
        };
        assert_eq!(bank_total(&out), Some(400));
        c.observe(&read_all(), &out);
        let mut state = initial_state(Workload::Bank);
        for _ in 0..50 {
            let input = c.next_input(&mut rng, Workload::Bank);
            let out = crate::kv::execute(&mut state, &input);
            c.observe(&input, &out);
            if matches!(input, Input::Txn { ref compares, .. } if compares.is_empty()) {
                assert_eq!(bank_total(&out), Some(400));
            }
        }
        let total: u64 = state.values().map(|v| v.parse::<u64>().unwrap()).sum();
        assert_eq!(total, 400);
    }
}
