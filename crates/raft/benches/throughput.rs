//! Proposals per second through a 3-member in-memory group: the leader batches each round of
//! proposals into one Append, followers persist into `MemStorage`, everything is applied.
//! Measures the consensus core alone (no IO, no encoding).

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quorum_raft::{ConfState, Config, MemStorage, Message, RawNode, Role, Storage};

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    queue: VecDeque<Message>,
    applied: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let nodes = (1..=3)
            .map(|id| {
                let mut cfg = Config::new(id);
                cfg.max_size_per_msg = 4 * 1024 * 1024;
                cfg.max_inflight_msgs = 256;
                let storage = MemStorage::new_with_conf_state(ConfState {
                    voters: vec![1, 2, 3],
                    ..ConfState::default()
                });
                RawNode::new(&cfg, storage).unwrap()
            })
            .collect();
        let mut c = Cluster {
            nodes,
            queue: VecDeque::new(),
            applied: 0,
        };
        c.nodes[0].campaign().unwrap();
        c.run();
        assert_eq!(c.nodes[0].status().soft_state.role, Role::Leader);
        c
    }

    /// Processes Readies and delivers messages until the group is quiet.
    fn run(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                let node = &mut self.nodes[i];
                if !node.has_ready() {
                    continue;
                }
                busy = true;
                let rd = node.ready();
                let store = node.storage_mut();
                store.append(&rd.entries).unwrap();
                if let Some(hs) = rd.hard_state {
                    store.set_hard_state(hs);
                }
                if i == 0 {
                    self.applied += rd.committed_entries.len() as u64;
                }
                self.queue.extend(rd.messages);
                self.queue.extend(rd.persisted_messages);
                node.advance();
            }
            while let Some(m) = self.queue.pop_front() {
                busy = true;
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).unwrap();
            }
            if !busy {
                return;
            }
        }
    }

    /// Keeps memory bounded: drops applied entries from every log.
    fn compact(&mut self) {
        for node in &mut self.nodes {
            let applied = node.status().applied;
            let first = node.storage().first_index().unwrap();
            if applied > first {
                node.storage_mut().compact(applied - 1).unwrap();
            }
        }
    }
}

/// One round: propose `batch` entries at the leader and run the group until quiet.
fn round(cluster: &mut Cluster, payload: &Bytes, batch: usize, rounds: &mut u64) {
    let data = vec![payload.clone(); batch];
    cluster.nodes[0].propose_batch(data).unwrap();
    cluster.run();
    *rounds += 1;
    if rounds.is_multiple_of(64) {
        cluster.compact();
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft");
    let payload = Bytes::from(vec![7u8; 16]);
    for batch in [64usize, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("3-node-propose-batch-{batch}"), |b| {
            let mut cluster = Cluster::new();
            let mut rounds = 0u64;
            b.iter(|| round(&mut cluster, &payload, batch, &mut rounds));
            assert!(cluster.applied >= rounds * batch as u64);
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
