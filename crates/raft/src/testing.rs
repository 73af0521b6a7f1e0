//! An in-memory network of [`RawNode`]s for tests: delivers messages between N members,
//! with directed links that can be cut (drops and partitions), and persists every Ready
//! into a [`MemStorage`] the way an embedder must.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::{
    ConfChange, ConfState, Config, Entry, EntryKind, MemStorage, Message, MessageType, NodeId,
    RawNode, ReadState, Role, Storage,
};

/// N members and the messages in flight between them.
pub struct Network {
    pub nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    /// Non-empty normal entries applied by each member, in order.
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub read_states: BTreeMap<NodeId, Vec<ReadState>>,
    /// Directed links (from, to) that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Message types dropped everywhere.
    pub drop_types: Vec<MessageType>,
    /// Members that are down: they neither send nor receive, nor process Readies.
    down: BTreeSet<NodeId>,
    queue: VecDeque<Message>,
    /// Applied entries as of each snapshot index taken by `compact` (the snapshot "image").
    images: BTreeMap<u64, Vec<Entry>>,
    /// Highest index each member applied (for restarts).
    applied_index: BTreeMap<NodeId, u64>,
    /// Seeded chaos: (rng, drop per-mille, duplicate per-mille, reorder).
    chaos: Option<(rand_chacha::ChaCha8Rng, u32, u32, bool)>,
    /// Every message delivered, for assertions.
    pub delivered: Vec<Message>,
}

/// Default test configuration: election 10, heartbeat 1, PreVote and CheckQuorum as given.
pub fn config(id: NodeId, pre_vote: bool, check_quorum: bool) -> Config {
    Config {
        pre_vote,
        check_quorum,
        seed: id * 7919,
        ..Config::new(id)
    }
}

/// A storage holding `terms[i]` at index `i + 1`, at `term`, with voters `ids`.
pub fn storage_with_log(ids: &[NodeId], terms: &[u64], term: u64) -> MemStorage {
    let mut s = MemStorage::new_with_conf_state(ConfState {
        voters: ids.to_vec(),
        ..ConfState::default()
    });
    let ents: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| Entry {
            index: i as u64 + 1,
            term: *t,
            ..Entry::default()
        })
        .collect();
    s.append(&ents).unwrap();
    let mut hs = s.hard_state();
    hs.term = term;
    s.set_hard_state(hs);
    s
}

impl Network {
    /// `n` voters 1..=n with the given PreVote / CheckQuorum settings.
    pub fn new(n: u64, pre_vote: bool, check_quorum: bool) -> Network {
        let ids: Vec<NodeId> = (1..=n).collect();
        Network::with_configs(
            ids.iter()
                .map(|id| {
                    (
                        config(*id, pre_vote, check_quorum),
                        storage_with_log(&ids, &[], 0),
                    )
                })
                .collect(),
        )
    }

    /// Members built from explicit configs and storages.
    pub fn with_configs(members: Vec<(Config, MemStorage)>) -> Network {
        let mut nodes = BTreeMap::new();
        for (cfg, storage) in members {
            nodes.insert(cfg.id, RawNode::new(&cfg, storage).unwrap());
        }
        Network {
            applied: nodes.keys().map(|id| (*id, Vec::new())).collect(),
            read_states: nodes.keys().map(|id| (*id, Vec::new())).collect(),
            nodes,
            cut: BTreeSet::new(),
            drop_types: Vec::new(),
            applied_index: BTreeMap::new(),
            images: BTreeMap::new(),
            chaos: None,
            down: BTreeSet::new(),
            queue: VecDeque::new(),
            delivered: Vec::new(),
        }
    }

    pub fn node(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Cuts `id` off from everyone (both directions).
    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Splits the members into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts one directed link.
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Stops `id` (crash): it processes nothing until `restart`.
    pub fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
    }

    /// Restarts `id` from its storage, with `applied` as the restart point.
    pub fn restart(&mut self, id: NodeId, cfg: &Config) {
        self.down.remove(&id);
        let storage = self.nodes.remove(&id).unwrap().storage().clone();
        let mut cfg = cfg.clone();
        cfg.applied = self.applied_index.get(&id).copied().unwrap_or(0);
        self.nodes.insert(id, RawNode::new(&cfg, storage).unwrap());
    }

    /// Processes one Ready of `id` like an embedder; queues its messages.
    pub fn process_ready(&mut self, id: NodeId) -> bool {
        if self.down.contains(&id) {
            return false;
        }
        let node = self.nodes.get_mut(&id).unwrap();
        if !node.has_ready() {
            return false;
        }
        let rd = node.ready();
        let mut msgs = rd.messages;
        if let Some(s) = &rd.snapshot {
            node.storage_mut().apply_snapshot(s.clone()).unwrap();
            let image = self
                .images
                .get(&s.metadata.index)
                .cloned()
                .unwrap_or_default();
            self.applied.insert(id, image);
        }
        node.storage_mut().append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            node.storage_mut().set_hard_state(hs);
        }
        msgs.extend(rd.persisted_messages);
        if let Some(s) = &rd.snapshot {
            self.applied_index.insert(id, s.metadata.index);
        }
        if let Some(e) = rd.committed_entries.last() {
            self.applied_index.insert(id, e.index);
        }
        for e in rd.committed_entries {
            if e.kind == EntryKind::ConfChange {
                let cc = ConfChange::decode(&e.data).unwrap();
                // A committed change that cannot be applied is a no-op on every member.
                if let Ok(cs) = node.apply_conf_change(&cc) {
                    node.storage_mut().set_conf_state(cs);
                }
            } else if !e.data.is_empty() {
                self.applied.get_mut(&id).unwrap().push(e);
            }
        }
        self.read_states
            .get_mut(&id)
            .unwrap()
            .extend(rd.read_states);
        node.advance();
        self.queue.extend(msgs);
        true
    }

    /// Delivers everything until no member has anything left to do.
    pub fn stabilize(&mut self) {
        for _round in 0..10_000 {
            let mut busy = false;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                busy |= self.process_ready(id);
            }
            while let Some(m) = self.pop_message() {
                busy = true;
                self.deliver(m);
            }
            if !busy {
                return;
            }
        }
        let tail: Vec<String> = self
            .delivered
            .iter()
            .rev()
            .take(12)
            .map(|m| {
                format!(
                    "{:?} {}->{} t{} i{} lt{} c{} n{} rej{} hint{}",
                    m.msg_type,
                    m.from,
                    m.to,
                    m.term,
                    m.index,
                    m.log_term,
                    m.commit,
                    m.entries.len(),
                    m.reject,
                    m.reject_hint
                )
            })
            .collect();
        panic!(
            "network did not stabilize; last messages:\n{}",
            tail.join("\n")
        );
    }

    /// Drops, duplicates and reorders messages from now on (deterministically from `seed`).
    pub fn set_chaos(&mut self, seed: u64, drop_per_mille: u32, dup_per_mille: u32, reorder: bool) {
        use rand::SeedableRng;
        self.chaos = Some((
            rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            drop_per_mille,
            dup_per_mille,
            reorder,
        ));
    }

    /// Turns chaos off.
    pub fn calm(&mut self) {
        self.chaos = None;
    }

    fn pop_message(&mut self) -> Option<Message> {
        use rand::RngExt;
        let Some((rng, drop, dup, reorder)) = self.chaos.as_mut() else {
            return self.queue.pop_front();
        };
        let mut lost = Vec::new();
        let mut picked = None;
        loop {
            if self.queue.is_empty() {
                break;
            }
            let i = if *reorder {
                rng.random_range(0..self.queue.len())
            } else {
                0
            };
            let m = self.queue.remove(i)?;
            if rng.random_range(0..1000) < *drop {
                lost.push(m);
                continue;
            }
            if rng.random_range(0..1000) < *dup {
                self.queue.push_back(m.clone());
            }
            picked = Some(m);
            break;
        }
        for m in lost {
            self.report_lost(&m);
        }
        picked
    }

    /// True if `id` is crashed.
    pub fn is_down(&self, id: NodeId) -> bool {
        self.down.contains(&id)
    }

    /// The transport tells the sender that a snapshot did not arrive (Appends are simply
    /// lost: Raft retries them by itself).
    fn report_lost(&mut self, m: &Message) {
        if m.msg_type == MessageType::Snapshot && !self.down.contains(&m.from) {
            if let Some(sender) = self.nodes.get_mut(&m.from) {
                sender.report_snapshot(m.to, false);
            }
        }
    }

    fn deliver(&mut self, m: Message) {
        if self.drop_types.contains(&m.msg_type) {
            return; // lost silently
        }
        if self.cut.contains(&(m.from, m.to))
            || self.down.contains(&m.from)
            || self.down.contains(&m.to)
        {
            self.report_lost(&m);
            return;
        }
        let Some(node) = self.nodes.get_mut(&m.to) else {
            return;
        };
        self.delivered.push(m.clone());
        let (from, to, is_snap) = (m.from, m.to, m.msg_type == MessageType::Snapshot);
        node.step(m).unwrap();
        if is_snap {
            if let Some(leader) = self.nodes.get_mut(&from) {
                leader.report_snapshot(to, true);
            }
        }
    }

    /// Snapshots `id`'s state machine at its applied index and compacts its log up to it.
    pub fn compact(&mut self, id: NodeId) {
        let index = self.applied_index.get(&id).copied().unwrap_or(0);
        let node = &self.nodes[&id];
        let snap_index = node.storage().snapshot(0).unwrap().metadata.index;
        if index <= snap_index || index < node.storage().first_index().unwrap() {
            return;
        }
        let image = self.applied[&id].clone();
        self.images.insert(index, image);
        let node = self.nodes.get_mut(&id).unwrap();
        let cs = node.status().conf_state;
        node.storage_mut()
            .create_snapshot(index, cs, Bytes::from(index.to_be_bytes().to_vec()))
            .unwrap();
        node.storage_mut().compact(index).unwrap();
    }

    /// Adds a new member (for membership changes).
    pub fn add_node(&mut self, cfg: &Config, storage: MemStorage) {
        self.nodes
            .insert(cfg.id, RawNode::new(cfg, storage).unwrap());
        self.applied.insert(cfg.id, Vec::new());
        self.read_states.insert(cfg.id, Vec::new());
    }

    /// Sends one message from outside (a test's hand-made message).
    pub fn send(&mut self, m: Message) {
        self.queue.push_back(m);
        self.stabilize();
    }

    /// Ticks every live member `n` times, stabilizing after each tick.
    pub fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                if !self.down.contains(&id) {
                    self.node(id).tick();
                }
            }
            self.stabilize();
        }
    }

    /// Ticks until some member (other than those down) leads, at most `max` ticks.
    pub fn tick_until_leader(&mut self, max: usize) -> Option<NodeId> {
        for _ in 0..max {
            self.tick_all(1);
            if let Some(l) = self.leader() {
                return Some(l);
            }
        }
        None
    }

    /// Campaigns `id` and delivers everything.
    pub fn campaign(&mut self, id: NodeId) {
        self.node(id).campaign().unwrap();
        self.stabilize();
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(id, n)| !self.down.contains(id) && n.status().soft_state.role == Role::Leader)
            .max_by_key(|(_, n)| n.status().hard_state.term)
            .map(|(id, _)| *id)
    }

    pub fn role(&self, id: NodeId) -> Role {
        self.nodes[&id].status().soft_state.role
    }

    pub fn term(&self, id: NodeId) -> u64 {
        self.nodes[&id].status().hard_state.term
    }

    pub fn commit(&self, id: NodeId) -> u64 {
        self.nodes[&id].status().hard_state.commit
    }

    /// Proposes `data` at `id` and delivers everything.
    pub fn propose(&mut self, id: NodeId, data: &'static [u8]) {
        self.node(id).propose(Bytes::from_static(data)).unwrap();
        self.stabilize();
    }

    /// The (index, term) pairs of `id`'s stored log.
    pub fn log_terms(&self, id: NodeId) -> Vec<(u64, u64)> {
        let s = self.nodes[&id].storage();
        let (lo, hi) = (s.first_index().unwrap(), s.last_index().unwrap());
        s.entries(lo, hi + 1, u64::MAX)
            .unwrap()
            .iter()
            .map(|e| (e.index, e.term))
            .collect()
    }

    pub fn applied_data(&self, id: NodeId) -> Vec<Bytes> {
        self.applied[&id].iter().map(|e| e.data.clone()).collect()
    }

    /// State Machine Safety across members: committed prefixes agree, and every member's
    /// applied sequence is a prefix of the longest one.
    pub fn check_safety(&self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for a in &ids {
            for b in &ids {
                let (sa, sb) = (self.nodes[a].storage(), self.nodes[b].storage());
                let upto = self.commit(*a).min(self.commit(*b));
                let lo = sa.first_index().unwrap().max(sb.first_index().unwrap());
                for i in lo..=upto {
                    if let (Ok(ta), Ok(tb)) = (sa.term(i), sb.term(i)) {
                        assert_eq!(
                            ta, tb,
                            "members {a} and {b} disagree at committed index {i}"
                        );
                    }
                }
                let (xa, xb) = (&self.applied[a], &self.applied[b]);
                let n = xa.len().min(xb.len());
                assert_eq!(xa[..n], xb[..n], "applied sequences of {a} and {b} diverge");
            }
        }
    }
}
