//! The simulation of one run: members, network, clients and faults driven by one seeded event
//! queue, with the invariants checked after every step and the history checked at the end.

use std::collections::BTreeMap;
use std::fmt;

use quorum_lincheck::{Checker, Input, Output, Recorder, Verdict};
use quorum_raft::{Config, Message, NodeId};

use crate::checks::{Invariants, Violation};
use crate::clock::NodeClock;
use crate::core_member::CoreMember;
use crate::lease::{LeaseHolder, LeaseOp, LeaseReply, LEASE_KEY};
use crate::member::{ClientRequest, Member, MemberOutput, MemberParams, RaftMember, Reply};
use crate::network::{Fate, NetConfig, Network, Partition};
use crate::rng::SimRng;
use crate::trace::Trace;
use crate::wal_disk::WalDisk;
use crate::workload::{
    bank_total, initial_state, read_all, Client, Workload, ACCOUNTS, INITIAL_BALANCE,
};

mod figure8;
use figure8::Figure8;

/// Largest number of messages buffered for a paused member (the rest are dropped, as a full
/// socket buffer would).
pub const MAX_PAUSE_BUFFER: usize = 4096;
/// The lease holder wakes this often to send what is due (µs).
pub const LEASE_WAKE_US: u64 = 20_000;
/// Largest number of events one run may process (a runaway guard).
pub const MAX_EVENTS: u64 = 5_000_000;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultMix {
    /// Partitions appear and heal.
    pub partitions: bool,
    /// Members crash and restart.
    pub crashes: bool,
    /// Members pause and resume.
    pub pauses: bool,
    /// Wide delays, loss and duplication instead of a calm network.
    pub flaky_network: bool,
    /// Members tick at different rates, with jitter.
    pub clock_skew: bool,
    /// Leader churn: a member that becomes leader is crashed soon after, now and then (the
    /// rapid succession of short-lived leaders that Figure 8 of the Raft paper needs).
    pub leader_churn: bool,
    /// The scripted Figure 8 nemesis (see `cluster/figure8.rs`): it owns the partitions, so
    /// it is not combined with random ones.
    pub figure8: bool,
}

impl FaultMix {
    /// No faults at all.
    pub fn none() -> Self {
        FaultMix {
            partitions: false,
            crashes: false,
            pauses: false,
            flaky_network: false,
            clock_skew: false,
            leader_churn: false,
            figure8: false,
        }
    }

    /// Only the scripted Figure 8 nemesis.
    pub fn figure8() -> Self {
        FaultMix {
            figure8: true,
            ..FaultMix::none()
        }
    }

    /// Every random fault (not the scripted Figure 8 nemesis).
    pub fn all() -> Self {
        FaultMix {
            partitions: true,
            crashes: true,
            pauses: true,
            flaky_network: true,
            clock_skew: true,
            leader_churn: true,
            figure8: false,
        }
    }
}

/// Which simulated disk members keep their Raft log on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// `MemStorage`: a Ready is durable as soon as it is handed over.
    Memory,
    /// The WAL on `SimFs`: writes become durable after a simulated fsync; a crash loses the
    /// rest and may tear the last write.
    Wal,
    /// The server's member core (`quorum_server::core::Core`) over the WAL on `SimFs` and the
    /// MVCC store, with a watcher checked on every member (see [`crate::core_member`]).
    Core,
}

/// Everything that defines a run. [`SimConfig::from_seed`] derives a varied one from a seed.
#[derive(Clone)]
pub struct SimConfig {
    /// The seed all randomness derives from.
    pub seed: u64,
    /// Group size.
    pub members: usize,
    /// What clients do.
    pub workload: Workload,
    /// Faults injected during the fault phase.
    pub faults: FaultMix,
    /// Concurrent clients.
    pub clients: usize,
    /// Length of the fault phase (simulated µs).
    pub fault_phase_us: u64,
    /// Length of the calm phase after everything heals (simulated µs).
    pub heal_phase_us: u64,
    /// Nominal tick interval (µs).
    pub tick_us: u64,
    /// Client request timeout (µs).
    pub client_timeout_us: u64,
    /// After healing, a write must commit within this long (µs).
    pub liveness_bound_us: u64,
    /// Print every event.
    pub trace: bool,
    /// Applied to every member's Raft config (tests plant bugs through it).
    pub tweak: Option<fn(&mut Config)>,
    /// The name of the planted bug `tweak` sets (see [`crate::replay::PLANTS`]), so the replay
    /// command plants it again.
    pub plant: Option<&'static str>,
    /// Run the quadratic log checks every this many events.
    pub log_check_every: u64,
    /// Byte limit of entries in one Append (1: one entry per message, which exposes
    /// commit-rule bugs that batching hides).
    pub max_msg_bytes: u64,
    /// The gap between two fault injections is drawn from this range (µs).
    pub fault_interval_us: (u64, u64),
    /// The members' disk.
    pub disk: DiskKind,
    /// An fsync takes this long (µs), drawn per sync.
    pub fsync_us: (u64, u64),
    /// Core members: snapshot (and compact the log) every this many applied entries, keeping
    /// this many entries behind each snapshot. `None`: never.
    pub core_snapshots: Option<(u64, u64)>,
    /// Let the network duplicate `Propose` messages to core members too (the server's
    /// transport never does; the core applies a duplicated forwarded proposal twice).
    pub duplicate_proposals: bool,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} members={} workload={:?} clients={} max_msg_bytes={} disk={:?} snapshots={:?} faults={:?}",
            self.seed,
            self.members,
            self.workload,
            self.clients,
            self.max_msg_bytes,
            self.disk,
            self.core_snapshots,
            self.faults
        )
    }
}

impl SimConfig {
    /// The run for `seed`: group size (1/3/5/7), workload and fault mix are drawn from it.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5eed_c0f1_9000_0000);
        let members = [1usize, 3, 3, 5, 5, 7][rng.below(6) as usize];
        let workload = if rng.chance(0.5) {
            Workload::Register
        } else {
            Workload::Bank
        };
        let faults = match rng.below(6) {
            0 => FaultMix::none(),
            1 => FaultMix {
                partitions: true,
                ..FaultMix::none()
            },
            2 => FaultMix {
                crashes: true,
                pauses: true,
                leader_churn: true,
                ..FaultMix::none()
            },
            3 => FaultMix {
                flaky_network: true,
                clock_skew: true,
                ..FaultMix::none()
            },
            _ => FaultMix::all(),
        };
        // Drawn from its own stream, so that adding the Figure 8 nemesis left every other
        // draw of existing seeds unchanged.
        let mut extra = SimRng::new(seed ^ 0xf16_8000_0000_0008);
        let faults = if members >= 3 && extra.chance(0.15) {
            FaultMix {
                figure8: true,
                clock_skew: extra.chance(0.5),
                ..FaultMix::none()
            }
        } else {
            faults
        };
        SimConfig {
            seed,
            members,
            workload,
            faults,
            clients: 2 + rng.below(4) as usize,
            fault_phase_us: 2_000_000,
            heal_phase_us: 1_500_000,
            tick_us: 10_000,
            client_timeout_us: 400_000,
            liveness_bound_us: 1_200_000,
            trace: false,
            tweak: None,
            plant: None,
            log_check_every: 2_000,
            max_msg_bytes: [1, 512, 64 * 1024][rng.below(3) as usize],
            fault_interval_us: (50_000, 400_000),
            disk: if rng.chance(0.5) {
                DiskKind::Wal
            } else {
                DiskKind::Memory
            },
            fsync_us: (200, 3_000),
            core_snapshots: None,
            duplicate_proposals: false,
        }
    }

    /// The run for `seed` on the server's member core: as [`SimConfig::from_seed`] (both
    /// workloads; the bank's balances are bootstrapped as a committed first entry), but with
    /// at most 5 members, a shorter run (the core writes a real redb file) and snapshots every
    /// 16, 40 or 100 applied entries.
    pub fn core_from_seed(seed: u64) -> Self {
        let mut cfg = Self::from_seed(seed);
        cfg.disk = DiskKind::Core;
        cfg.members = cfg.members.min(5);
        cfg.fault_phase_us = 1_200_000;
        // Long enough for a lease whose keep-alives stopped to expire on the slowest clock.
        cfg.heal_phase_us = 2_300_000;
        // Own stream: the draws above stay what they were for every seed.
        let mut rng = SimRng::new(seed ^ 0x5_0a95_0000_0000);
        let count = [16, 40, 100][rng.below(3) as usize];
        let catchup = [2, 8, 32][rng.below(3) as usize];
        cfg.core_snapshots = Some((count, catchup));
        cfg
    }
}

/// What a successful run reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Hash of the full event trace (identical for identical seeds).
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Client operations invoked.
    pub ops: u64,
    /// Of which completed with an answer.
    pub ok_ops: u64,
    /// Of which certainly failed.
    pub failed_ops: u64,
    /// Log entries applied (by the first member to apply each index).
    pub applied_entries: u64,
    /// Whether the linearizability check ran out of budget (not a failure, but reported).
    pub lincheck_unknown: bool,
    /// Lease keep-alives (and the grant) answered with a TTL (0 without leases).
    pub lease_renewed: u64,
    /// Whether the lease's expiry after the holder stopped was checked at the end.
    pub lease_expiry_checked: bool,
    /// Snapshot images members received from leaders.
    pub snapshots_received: u64,
}

/// A failed run: everything needed to understand and replay it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The run's configuration.
    pub config: String,
    /// The seed.
    pub seed: u64,
    /// Which check failed.
    pub check: String,
    /// What it saw.
    pub detail: String,
    /// Simulated time of the failure (µs).
    pub time_us: u64,
    /// The last events before the failure.
    pub recent_events: Vec<String>,
    /// The client history recorded up to the failure (operations still pending have an
    /// unknown outcome), for `lincheck` and offline analysis.
    pub history: Option<quorum_lincheck::History>,
    /// The one command that replays this seed with full tracing.
    pub replay: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SIMULATION FAILURE seed={} at {}us",
            self.seed, self.time_us
        )?;
        writeln!(f, "run: {}", self.config)?;
        writeln!(f, "check failed: {}", self.check)?;
        writeln!(f, "{}", self.detail)?;
        writeln!(f, "last events:")?;
        for e in &self.recent_events {
            writeln!(f, "  {e}")?;
        }
        write!(f, "replay: {}", self.replay)
    }
}

#[derive(Clone, Debug)]
enum Event {
    Tick(NodeId),
    Deliver(Message),
    Request(NodeId, ClientRequest),
    Reply(u64, Reply),
    ClientWake(u64),
    ClientTimeout(u64, u64),
    Fault,
    Restart(NodeId),
    /// Crash this member if it still leads in this term.
    CrashLeader(NodeId, u64),
    /// The member's pending fsync completes (if it is still the same incarnation).
    SyncDone(NodeId, u64),
    Resume(NodeId),
    Heal,
    /// The lease holder acts (sends what is due).
    LeaseWake,
    /// A lease holder's request arrives at a member.
    LeaseOp(NodeId, LeaseOp),
    /// A member's answer arrives at the lease holder.
    LeaseReply(LeaseReply),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NodeState {
    Up,
    Down,
    /// Inputs that arrived during the pause, delivered in arrival order on resume.
    Paused(Vec<Buffered>),
}

/// An input buffered for a paused member.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Buffered {
    Message(Message),
    Request(ClientRequest),
}

struct Sim<M: Member> {
    cfg: SimConfig,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    rng: SimRng,
    net: Network,
    clocks: Vec<NodeClock>,
    members: Vec<M>,
    states: Vec<NodeState>,
    clients: Vec<Client>,
    recorder: Recorder,
    invariants: Invariants,
    trace: Trace,
    events: u64,
    heal_time: Option<u64>,
    first_write_after_heal: Option<u64>,
    bank_reads: Vec<Output>,
    /// Per member: restarts so far (a sync scheduled before a crash is void after it).
    incarnations: Vec<u64>,
    /// Per member: a sync completion is scheduled.
    sync_scheduled: Vec<bool>,
    /// The Figure 8 nemesis' round, when the run uses it.
    figure8: Option<Figure8>,
    /// Figure 8 rule: Appends lose the entries of their sender's term.
    figure8_truncate: bool,
    /// Figure 8 rule: only this member's (pre-)vote requests get through.
    figure8_candidate: Option<NodeId>,
    /// The lease holder, when the members serve leases.
    lease: Option<LeaseHolder>,
    /// Figure 8: when an Append left empty last got through, per (from, to) link.
    figure8_probes: BTreeMap<(NodeId, NodeId), u64>,
}

/// Runs the seed's simulation with `RawNode<MemStorage>` members.
pub fn run(cfg: &SimConfig) -> Result<RunReport, Box<SimFailure>> {
    match cfg.disk {
        DiskKind::Memory => run_with(cfg, RaftMember::new),
        DiskKind::Wal => run_with(cfg, |id, params| {
            let disk = WalDisk::new(cfg.seed.wrapping_mul(1_000_003).wrapping_add(id));
            RaftMember::with_disk(id, params, disk)
        }),
        DiskKind::Core => run_with(cfg, |id, params| {
            let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(id);
            match cfg.core_snapshots {
                Some((count, catchup)) => {
                    CoreMember::new_with_snapshots(id, params, seed, true, count, catchup)
                }
                None => CoreMember::new(id, params, seed, true),
            }
        }),
    }
}

/// Runs a simulation with members built by `make`.
pub fn run_with<M: Member>(
    cfg: &SimConfig,
    mut make: impl FnMut(NodeId, MemberParams) -> Result<M, String>,
) -> Result<RunReport, Box<SimFailure>> {
    assert!(cfg.members >= 1 && cfg.clients >= 1, "empty simulation");
    let mut rng = SimRng::new(cfg.seed);
    let n = cfg.members as u64;
    let params = MemberParams {
        voters: (1..=n).collect(),
        initial: initial_state(cfg.workload),
        tweak: cfg.tweak,
        seed: cfg.seed,
        max_msg_bytes: cfg.max_msg_bytes,
    };
    let mut members = Vec::with_capacity(cfg.members);
    for id in 1..=n {
        match make(id, params.clone()) {
            Ok(m) => members.push(m),
            Err(e) => {
                return Err(Box::new(SimFailure {
                    config: format!("{cfg:?}"),
                    seed: cfg.seed,
                    check: "setup".into(),
                    detail: e,
                    time_us: 0,
                    recent_events: vec![],
                    history: None,
                    replay: cfg.replay_command(),
                }))
            }
        }
    }
    let clocks = (0..n)
        .map(|_| {
            if cfg.faults.clock_skew {
                NodeClock::skewed(&mut rng, cfg.tick_us, 300, 200)
            } else {
                NodeClock::exact(cfg.tick_us)
            }
        })
        .collect();
    let net_config = if cfg.faults.flaky_network {
        NetConfig::flaky()
    } else {
        NetConfig::calm()
    };
    let mut sim = Sim {
        net: Network::new(net_config, n),
        rng: rng.fork(),
        cfg: cfg.clone(),
        now: 0,
        seq: 0,
        queue: BTreeMap::new(),
        clocks,
        members,
        states: vec![NodeState::Up; cfg.members],
        clients: (1..=cfg.clients as u64).map(Client::new).collect(),
        recorder: Recorder::new(),
        invariants: Invariants::new(),
        trace: Trace::new(cfg.trace),
        events: 0,
        heal_time: None,
        first_write_after_heal: None,
        bank_reads: Vec::new(),
        incarnations: vec![0; cfg.members],
        sync_scheduled: vec![false; cfg.members],
        figure8: None,
        figure8_truncate: false,
        figure8_candidate: None,
        figure8_probes: BTreeMap::new(),
        lease: None,
    };
    sim.run().map_err(|v| Box::new(sim.failure(v)))
}

impl<M: Member> Sim<M> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn failure(&self, v: Violation) -> SimFailure {
        SimFailure {
            config: format!("{:?}", self.cfg),
            seed: self.cfg.seed,
            check: v.check.to_string(),
            detail: v.detail,
            time_us: self.now,
            recent_events: self.trace.recent(),
            history: self.recorder.clone().into_history().ok(),
            replay: self.cfg.replay_command(),
        }
    }

    fn idx(id: NodeId) -> usize {
        debug_assert!(id >= 1);
        (id - 1) as usize
    }

    fn run(&mut self) -> Result<RunReport, Violation> {
        let n = self.cfg.members as u64;
        for id in 1..=n {
            let first = self.rng.range(0, self.cfg.tick_us);
            self.schedule(first, Event::Tick(id));
        }
        for c in 1..=self.cfg.clients as u64 {
            let at = self.rng.range(50_000, 150_000);
            self.schedule(at, Event::ClientWake(c));
        }
        let faulty =
            self.cfg.faults.partitions || self.cfg.faults.crashes || self.cfg.faults.pauses;
        if faulty {
            let at = self.rng.range(100_000, 400_000);
            self.schedule(at, Event::Fault);
        }
        if self.cfg.faults.figure8 && n >= 3 {
            let at = self.rng.range(150_000, 400_000);
            self.figure8 = Some(Figure8::Idle { at });
        }
        if self.members.first().is_some_and(|m| m.supports_leases()) {
            let target = self.rng.range(1, n + 1);
            let stop_at = if self.rng.chance(0.3) {
                u64::MAX
            } else {
                self.rng
                    .range(400_000, self.cfg.fault_phase_us.max(400_001))
            };
            self.lease = Some(LeaseHolder::new(target, stop_at));
            let at = self.rng.range(150_000, 250_000);
            self.schedule(at, Event::LeaseWake);
        }
        self.schedule(self.cfg.fault_phase_us, Event::Heal);
        let end = self.cfg.fault_phase_us + self.cfg.heal_phase_us;

        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > end {
                break;
            }
            self.now = at;
            self.events += 1;
            if self.events > MAX_EVENTS {
                return Err(Violation {
                    check: "event budget",
                    detail: format!("more than {MAX_EVENTS} events"),
                });
            }
            self.handle(event)?;
            self.figure8_step()?;
            if self.events.is_multiple_of(self.cfg.log_check_every.max(1)) {
                self.invariants.check_logs(&self.members)?;
            }
        }
        self.finish()
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Tick(id) => {
                let i = Self::idx(id);
                let next = self.clocks[i].next_tick(&mut self.rng, self.now);
                self.schedule(next, Event::Tick(id));
                if self.states[i] == NodeState::Up {
                    self.trace.record(self.now, format_args!("n{id} tick"));
                    self.members[i].tick();
                    self.drive(id)?;
                }
            }
            Event::Deliver(msg) => {
                let (from, to) = (msg.from, msg.to);
                let i = Self::idx(to);
                if !self.net.connected(from, to) {
                    self.trace.record(
                        self.now,
                        format_args!("drop {:?} n{from}->n{to} (partition)", msg.msg_type),
                    );
                    return Ok(());
                }
                match &mut self.states[i] {
                    NodeState::Down => {}
                    NodeState::Paused(buf) => {
                        if buf.len() < MAX_PAUSE_BUFFER {
                            buf.push(Buffered::Message(msg));
                        }
                    }
                    NodeState::Up => {
                        self.trace.record(
                            self.now,
                            format_args!(
                                "deliver {:?} n{from}->n{to} term={} idx={} logterm={} commit={} n_ent={} reject={}",
                                msg.msg_type,
                                msg.term,
                                msg.index,
                                msg.log_term,
                                msg.commit,
                                msg.entries.len(),
                                msg.reject
                            ),
                        );
                        self.members[i].receive(msg);
                        self.drive(to)?;
                    }
                }
            }
            Event::Request(id, req) => {
                let i = Self::idx(id);
                match &mut self.states[i] {
                    NodeState::Down => {}
                    NodeState::Paused(buf) => {
                        if buf.len() < MAX_PAUSE_BUFFER {
                            buf.push(Buffered::Request(req));
                        }
                    }
                    NodeState::Up => {
                        self.trace.record(
                            self.now,
                            format_args!("n{id} request op{} from c{}", req.op_id, req.client),
                        );
                        self.members[i].submit(req);
                        self.drive(id)?;
                    }
                }
            }
            Event::Reply(client, reply) => self.on_reply(client, reply),
            Event::ClientWake(c) => self.client_wake(c),
            Event::ClientTimeout(c, op_id) => {
                let ci = (c - 1) as usize;
                let matches = self.clients[ci]
                    .in_flight
                    .as_ref()
                    .is_some_and(|f| f.request.op_id == op_id);
                if matches {
                    self.trace
                        .record(self.now, format_args!("c{c} op{op_id} timed out"));
                    self.clients[ci].in_flight = None;
                    self.clients[ci].believed_leader =
                        self.rng.range(1, self.cfg.members as u64 + 1);
                    let at = self.now + self.rng.range(0, 5_000);
                    self.schedule(at, Event::ClientWake(c));
                }
            }
            Event::Fault => self.inject_fault()?,
            Event::Restart(id) => self.restart(id)?,
            Event::CrashLeader(id, term) => self.crash_leader(id, term),
            Event::SyncDone(id, incarnation) => self.sync_done(id, incarnation)?,
            Event::Resume(id) => self.resume(id)?,
            Event::Heal => self.heal_all()?,
            Event::LeaseWake => self.lease_wake(),
            Event::LeaseOp(id, op) => {
                let i = Self::idx(id);
                if self.states[i] == NodeState::Up {
                    self.trace
                        .record(self.now, format_args!("n{id} lease request {op:?}"));
                    self.members[i].lease(op);
                    self.drive(id)?;
                }
            }
            Event::LeaseReply(reply) => {
                self.trace
                    .record(self.now, format_args!("lease holder gets {reply:?}"));
                let n = self.cfg.members as u64;
                if let Some(h) = &mut self.lease {
                    if h.on_reply(&reply) {
                        h.target = self.rng.range(1, n + 1);
                    }
                }
            }
        }
        Ok(())
    }

    fn drive(&mut self, id: NodeId) -> Result<(), Violation> {
        let i = Self::idx(id);
        let mut out = MemberOutput::default();
        self.members[i].drive(&mut out);
        for note in &out.notes {
            self.trace.record(self.now, format_args!("note {note}"));
        }
        let status = self.members[i].status();
        for ss in &out.soft_states {
            self.trace.record(
                self.now,
                format_args!(
                    "n{id} becomes {:?} term={} leader={}",
                    ss.role, status.term, ss.leader
                ),
            );
            self.invariants
                .on_soft_state(id, ss, status.term, &self.members)?;
            if ss.role == quorum_raft::Role::Leader
                && self.cfg.faults.leader_churn
                && self.heal_time.is_none()
                && self.rng.chance(0.3)
            {
                let at = self.now + self.rng.range(0, 40_000);
                self.schedule(at, Event::CrashLeader(id, status.term));
            }
        }
        for a in out.applied {
            self.invariants
                .on_applied(id, a, status.term, &self.members)?;
        }
        self.invariants.on_status(id, &status)?;
        for msg in out.messages {
            let Some(msg) = self.figure8_filter(msg) else {
                continue;
            };
            match self.net.route(&mut self.rng, msg.from, msg.to) {
                Fate::Dropped => {}
                Fate::Delivered(mut delays) => {
                    if msg.msg_type == quorum_raft::MessageType::Propose
                        && self.cfg.disk == DiskKind::Core
                        && !self.cfg.duplicate_proposals
                    {
                        // The server's transport (one gRPC stream per peer, no resend) never
                        // delivers a message twice, and the core does not de-duplicate
                        // forwarded proposals: a duplicated Propose is applied twice.
                        delays.truncate(1);
                    }
                    for d in delays {
                        self.schedule(self.now + d, Event::Deliver(msg.clone()));
                    }
                }
            }
        }
        for reply in out.lease_replies {
            let d = self.net.delay(&mut self.rng);
            self.schedule(self.now + d, Event::LeaseReply(reply));
        }
        for key in out.lease_keys_removed {
            self.trace
                .record(self.now, format_args!("n{id} lost lease key {key}"));
            if let (Some(h), true) = (&mut self.lease, key == LEASE_KEY) {
                h.on_removed(self.now).map_err(|detail| Violation {
                    check: "lease safety",
                    detail: format!("n{id}: {detail}"),
                })?;
            }
        }
        for (client, reply) in out.replies {
            let d = self.net.delay(&mut self.rng);
            self.schedule(self.now + d, Event::Reply(client, reply));
        }
        if self.members[i].sync_pending() && !self.sync_scheduled[i] {
            self.sync_scheduled[i] = true;
            let (lo, hi) = self.cfg.fsync_us;
            let at = self.now + self.rng.range(lo, hi);
            self.schedule(at, Event::SyncDone(id, self.incarnations[i]));
        }
        Ok(())
    }

    fn sync_done(&mut self, id: NodeId, incarnation: u64) -> Result<(), Violation> {
        let i = Self::idx(id);
        if self.incarnations[i] != incarnation {
            return Ok(());
        }
        match self.states[i] {
            NodeState::Down => Ok(()),
            // The disk finishes, but the process acts on it only when it runs again.
            NodeState::Paused(_) => {
                let at = self.now + 1_000;
                self.schedule(at, Event::SyncDone(id, incarnation));
                Ok(())
            }
            NodeState::Up => {
                self.sync_scheduled[i] = false;
                self.trace
                    .record(self.now, format_args!("n{id} fsync done"));
                self.members[i].complete_sync();
                self.drive(id)
            }
        }
    }

    fn on_reply(&mut self, c: u64, reply: Reply) {
        let ci = (c - 1) as usize;
        let Some(in_flight) = self.clients[ci].in_flight.clone() else {
            return;
        };
        let op_id = match &reply {
            Reply::Done { op_id, .. } | Reply::Refused { op_id, .. } => *op_id,
        };
        if in_flight.request.op_id != op_id {
            return;
        }
        self.clients[ci].in_flight = None;
        match reply {
            Reply::Done { output, .. } => {
                self.trace.record(
                    self.now,
                    format_args!(
                        "c{c} op{op_id} ok {:?} -> {:?}",
                        in_flight.request.input, output
                    ),
                );
                let input = &in_flight.request.input;
                if !input.is_read_only() {
                    if let Some(heal) = self.heal_time {
                        let invoked = in_flight.deadline - self.cfg.client_timeout_us;
                        if invoked >= heal && self.first_write_after_heal.is_none() {
                            self.first_write_after_heal = Some(self.now);
                        }
                    }
                }
                if *input == read_all() {
                    self.bank_reads.push(output.clone());
                }
                self.clients[ci].observe(input, &output);
                self.recorder.ok(op_id, output, self.now);
            }
            Reply::Refused { reason, .. } => {
                self.trace
                    .record(self.now, format_args!("c{c} op{op_id} refused: {reason}"));
                self.recorder.fail(op_id);
                let n = self.cfg.members as u64;
                self.clients[ci].believed_leader = self.rng.range(1, n + 1);
            }
        }
        let at = self.now + self.rng.range(0, 5_000);
        self.schedule(at, Event::ClientWake(c));
    }

    fn client_wake(&mut self, c: u64) {
        let ci = (c - 1) as usize;
        if self.clients[ci].in_flight.is_some() {
            return;
        }
        let input: Input = self.clients[ci].next_input(&mut self.rng, self.cfg.workload);
        let target = self.clients[ci].believed_leader;
        let req = self.clients[ci].start(
            &mut self.recorder,
            input,
            target,
            self.now,
            self.cfg.client_timeout_us,
        );
        self.trace.record(
            self.now,
            format_args!("c{c} invoke op{} {:?} at n{target}", req.op_id, req.input),
        );
        let op_id = req.op_id;
        let d = self.net.delay(&mut self.rng);
        self.schedule(self.now + d, Event::Request(target, req));
        self.schedule(
            self.now + self.cfg.client_timeout_us,
            Event::ClientTimeout(c, op_id),
        );
    }

    /// The lease holder sends what is due, and wakes again soon.
    fn lease_wake(&mut self) {
        let n = self.cfg.members as u64;
        let Some(h) = &mut self.lease else { return };
        let op = h.next(self.now);
        if std::mem::take(&mut h.switch_target) {
            h.target = self.rng.range(1, n + 1);
        }
        if let Some(op) = op {
            let target = h.target;
            self.trace.record(
                self.now,
                format_args!("lease holder sends {op:?} to n{target}"),
            );
            let d = self.net.delay(&mut self.rng);
            self.schedule(self.now + d, Event::LeaseOp(target, op));
        }
        self.schedule(self.now + LEASE_WAKE_US, Event::LeaseWake);
    }

    /// The member that believes it leads in the highest term, if any.
    fn current_leader(&self) -> Option<NodeId> {
        self.members
            .iter()
            .zip(&self.states)
            .filter(|(_, st)| **st == NodeState::Up)
            .map(|(m, _)| (m.status(), m.id()))
            .filter(|(st, _)| st.role == quorum_raft::Role::Leader)
            .max_by_key(|(st, id)| (st.term, *id))
            .map(|(_, id)| id)
    }

    /// A fault target: the leader half of the time (as Jepsen's nemeses do), else anyone.
    fn victim(&mut self) -> NodeId {
        let n = self.cfg.members as u64;
        let anyone = self.rng.range(1, n + 1);
        if self.rng.chance(0.5) {
            self.current_leader().unwrap_or(anyone)
        } else {
            anyone
        }
    }

    fn down_or_paused(&self) -> usize {
        self.states.iter().filter(|s| **s != NodeState::Up).count()
    }

    fn inject_fault(&mut self) -> Result<(), Violation> {
        if self.heal_time.is_some() {
            return Ok(());
        }
        let n = self.cfg.members as u64;
        let f = self.cfg.faults;
        let mut options: Vec<u8> = Vec::new();
        if f.partitions && n >= 2 {
            options.push(0);
        }
        // Crash or pause at most a minority at once, so the group can make progress between
        // faults (all-down periods teach little and waste the run).
        let can_stop = self.down_or_paused() < (self.cfg.members - 1) / 2 || n == 1;
        if f.crashes && can_stop {
            options.push(1);
        }
        if f.pauses && can_stop {
            options.push(2);
        }
        if let Some(choice) = self.rng.pick(&options).copied() {
            match choice {
                0 => {
                    if self.net.current().is_some() {
                        self.net.heal();
                        self.trace
                            .record(self.now, format_args!("partition healed"));
                    } else {
                        let p = if self.rng.chance(0.3) {
                            Partition::Isolated(self.victim())
                        } else {
                            Partition::random(&mut self.rng, n)
                        };
                        self.trace.record(self.now, format_args!("partition {p:?}"));
                        self.net.partition(p);
                    }
                }
                1 => {
                    let id = self.victim();
                    let i = Self::idx(id);
                    if self.states[i] == NodeState::Up {
                        self.states[i] = NodeState::Down;
                        self.trace.record(self.now, format_args!("n{id} crashes"));
                        let at = self.now + self.rng.range(20_000, 600_000);
                        self.schedule(at, Event::Restart(id));
                    }
                }
                _ => {
                    let id = self.victim();
                    let i = Self::idx(id);
                    if self.states[i] == NodeState::Up {
                        self.states[i] = NodeState::Paused(Vec::new());
                        self.trace.record(self.now, format_args!("n{id} pauses"));
                        let at = self.now + self.rng.range(20_000, 800_000);
                        self.schedule(at, Event::Resume(id));
                    }
                }
            }
        }
        let (lo, hi) = self.cfg.fault_interval_us;
        let at = self.now + self.rng.range(lo, hi);
        self.schedule(at, Event::Fault);
        Ok(())
    }

    fn crash_leader(&mut self, id: NodeId, term: u64) {
        let i = Self::idx(id);
        let st = self.members[i].status();
        let can_stop = self.down_or_paused() < (self.cfg.members - 1) / 2;
        if self.states[i] == NodeState::Up
            && st.term == term
            && st.role == quorum_raft::Role::Leader
            && can_stop
            && self.heal_time.is_none()
        {
            self.states[i] = NodeState::Down;
            self.trace
                .record(self.now, format_args!("n{id} crashes (leader churn)"));
            let at = self.now + self.rng.range(10_000, 300_000);
            self.schedule(at, Event::Restart(id));
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        let i = Self::idx(id);
        if self.states[i] != NodeState::Down {
            return Ok(());
        }
        self.trace.record(self.now, format_args!("n{id} restarts"));
        self.members[i].crash_restart();
        self.incarnations[i] += 1;
        self.sync_scheduled[i] = false;
        self.invariants.restarted(id);
        self.states[i] = NodeState::Up;
        self.drive(id)
    }

    fn resume(&mut self, id: NodeId) -> Result<(), Violation> {
        let i = Self::idx(id);
        let NodeState::Paused(buffered) = std::mem::replace(&mut self.states[i], NodeState::Up)
        else {
            return Ok(());
        };
        self.trace.record(
            self.now,
            format_args!("n{id} resumes with {} buffered messages", buffered.len()),
        );
        // A paused process wakes up with its timers overdue and acts on them before it reads
        // what queued up meanwhile; and it may serve queued client requests before it reads
        // its peers' messages (any order of ready sockets is possible): stale beliefs.
        self.members[i].tick();
        self.drive(id)?;
        let clients_first = self.rng.chance(0.5);
        let (requests, messages): (Vec<Buffered>, Vec<Buffered>) = buffered
            .into_iter()
            .partition(|b| matches!(b, Buffered::Request(_)));
        let ordered: Vec<Buffered> = if clients_first {
            requests.into_iter().chain(messages).collect()
        } else {
            messages.into_iter().chain(requests).collect()
        };
        for input in ordered {
            match input {
                Buffered::Message(msg) => self.members[i].receive(msg),
                Buffered::Request(req) => {
                    self.trace.record(
                        self.now,
                        format_args!(
                            "n{id} request op{} from c{} (buffered)",
                            req.op_id, req.client
                        ),
                    );
                    self.members[i].submit(req)
                }
            }
            self.drive(id)?;
        }
        Ok(())
    }

    fn heal_all(&mut self) -> Result<(), Violation> {
        self.trace.record(self.now, format_args!("heal everything"));
        self.heal_time = Some(self.now);
        self.figure8 = None;
        self.figure8_heal();
        self.net.config = NetConfig::calm();
        for id in 1..=self.cfg.members as u64 {
            self.restart(id)?;
            self.resume(id)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RunReport, Violation> {
        self.invariants.check_logs(&self.members)?;
        for m in &mut self.members {
            if let Err(detail) = m.final_check() {
                return Err(Violation {
                    check: "member final check (watch guarantees)",
                    detail,
                });
            }
        }
        let heal = self.heal_time.unwrap_or(0);
        let end = self.cfg.fault_phase_us + self.cfg.heal_phase_us;
        if let Some(h) = self
            .lease
            .as_ref()
            .filter(|h| h.expiry_checkable(heal, end))
        {
            for m in &self.members {
                if m.lease_keys().iter().any(|k| k == LEASE_KEY) {
                    return Err(Violation {
                        check: "lease expiry",
                        detail: format!(
                            "n{} still holds {LEASE_KEY} at the end, though the holder stopped keep-alives at {}us (last successful one sent at {:?}us) and the cluster healed at {heal}us",
                            m.id(),
                            h.stop_at,
                            h.last_renewed
                        ),
                    });
                }
            }
        }
        match self.first_write_after_heal {
            Some(t) if t <= heal + self.cfg.liveness_bound_us => {}
            other => {
                return Err(Violation {
                    check: "liveness",
                    detail: format!(
                        "no write invoked after healing at {heal}us committed within {}us (first: {other:?})",
                        self.cfg.liveness_bound_us
                    ),
                })
            }
        }
        if self.cfg.workload == Workload::Bank {
            let total = ACCOUNTS as u64 * INITIAL_BALANCE;
            for out in &self.bank_reads {
                if bank_total(out) != Some(total) {
                    return Err(Violation {
                        check: "bank total",
                        detail: format!(
                            "a read of all accounts saw {out:?}, total should be {total}"
                        ),
                    });
                }
            }
            for m in &self.members {
                let sum: Option<u64> = m.data().values().map(|v| v.parse::<u64>().ok()).sum();
                if sum != Some(total) {
                    return Err(Violation {
                        check: "bank total",
                        detail: format!(
                            "n{} holds {:?}, total should be {total}",
                            m.id(),
                            m.data()
                        ),
                    });
                }
            }
        }
        let history = self
            .recorder
            .clone()
            .into_history()
            .map_err(|e| Violation {
                check: "history",
                detail: e.to_string(),
            })?;
        let mut checker = Checker::new();
        checker.initial = initial_state(self.cfg.workload);
        checker.budget.max_steps = 3_000_000;
        let verdict = checker.check(&history);
        if let Verdict::NotLinearizable(w) = &verdict {
            return Err(Violation {
                check: "linearizability",
                detail: w.to_string(),
            });
        }
        let ops = history.len() as u64;
        let ok_ops = history
            .operations()
            .iter()
            .filter(|o| o.return_time().is_some())
            .count() as u64;
        let failed_ops = history
            .operations()
            .iter()
            .filter(|o| o.outcome == quorum_lincheck::Outcome::Fail)
            .count() as u64;
        Ok(RunReport {
            seed: self.cfg.seed,
            trace_hash: self.trace.hash(),
            events: self.events,
            ops,
            ok_ops,
            failed_ops,
            applied_entries: self.invariants.applied_len(),
            lincheck_unknown: matches!(verdict, Verdict::Unknown { .. }),
            lease_renewed: self.lease.as_ref().map_or(0, |h| h.renewed),
            lease_expiry_checked: self
                .lease
                .as_ref()
                .is_some_and(|h| h.expiry_checkable(heal, end)),
            snapshots_received: self.members.iter().map(|m| m.snapshots_received()).sum(),
        })
    }
}
