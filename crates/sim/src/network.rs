//! The simulated network between members: per-message delay (which reorders messages), loss,
//! duplication, and partitions compiled into a set of blocked directed links.

use std::collections::BTreeSet;

use quorum_raft::NodeId;

use crate::rng::SimRng;

/// Message-level fault parameters. Delays are in microseconds of simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest delay.
    pub min_delay_us: u64,
    /// Largest delay of the common case (uniform in `[min, max)`).
    pub max_delay_us: u64,
    /// Probability that a message takes the slow tail instead.
    pub tail_chance: f64,
    /// Largest delay of the slow tail.
    pub tail_max_us: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
}

impl NetConfig {
    /// A healthy LAN: 0.2–2 ms, rare 20 ms stragglers, nothing lost.
    pub fn calm() -> Self {
        NetConfig {
            min_delay_us: 200,
            max_delay_us: 2_000,
            tail_chance: 0.01,
            tail_max_us: 20_000,
            loss: 0.0,
            duplicate: 0.0,
        }
    }

    /// A bad network: wide delays (heavy reordering), loss and duplication.
    pub fn flaky() -> Self {
        NetConfig {
            min_delay_us: 100,
            max_delay_us: 10_000,
            tail_chance: 0.05,
            tail_max_us: 80_000,
            loss: 0.05,
            duplicate: 0.03,
        }
    }
}

/// A partition shape. Members are numbered `1..=n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Two sides that cannot talk to each other.
    Halves {
        /// One side.
        left: Vec<NodeId>,
        /// The other side.
        right: Vec<NodeId>,
    },
    /// One member cut off from everyone.
    Isolated(NodeId),
    /// `deaf` hears nobody, but everybody hears `deaf` (A hears B, B doesn't hear A).
    Asymmetric {
        /// The member whose incoming links are cut.
        deaf: NodeId,
    },
    /// Two sides that cannot talk, and a bridge member that talks to both.
    Bridge {
        /// One side.
        left: Vec<NodeId>,
        /// The other side.
        right: Vec<NodeId>,
        /// The member connected to both.
        bridge: NodeId,
    },
}

impl Partition {
    /// A random partition of members `1..=n` (n ≥ 2).
    pub fn random(rng: &mut SimRng, n: u64) -> Partition {
        debug_assert!(n >= 2);
        let mut ids: Vec<NodeId> = (1..=n).collect();
        // Fisher–Yates with our RNG, so the shuffle is part of the seed's replay.
        for i in (1..ids.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            ids.swap(i, j);
        }
        match rng.below(4) {
            0 => {
                let cut = rng.range(1, n) as usize;
                Partition::Halves {
                    left: ids[..cut].to_vec(),
                    right: ids[cut..].to_vec(),
                }
            }
            1 => Partition::Isolated(ids[0]),
            2 => Partition::Asymmetric { deaf: ids[0] },
            _ if n >= 3 => {
                let cut = rng.range(1, n - 1) as usize;
                Partition::Bridge {
                    bridge: ids[0],
                    left: ids[1..=cut].to_vec(),
                    right: ids[cut + 1..].to_vec(),
                }
            }
            _ => Partition::Isolated(ids[0]),
        }
    }

    /// The directed links this partition cuts, as (from, to).
    pub fn blocked_links(&self, n: u64) -> BTreeSet<(NodeId, NodeId)> {
        let mut cut = BTreeSet::new();
        let mut sever = |a: &[NodeId], b: &[NodeId]| {
            for x in a {
                for y in b {
                    cut.insert((*x, *y));
                    cut.insert((*y, *x));
                }
            }
        };
        match self {
            Partition::Halves { left, right } | Partition::Bridge { left, right, .. } => {
                sever(left, right)
            }
            Partition::Isolated(node) => {
                let others: Vec<NodeId> = (1..=n).filter(|x| x != node).collect();
                sever(&[*node], &others);
            }
            Partition::Asymmetric { deaf } => {
                for other in (1..=n).filter(|x| x != deaf) {
                    cut.insert((other, *deaf));
                }
            }
        }
        cut
    }
}

/// What happens to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped (loss or partition).
    Dropped,
    /// Delivered after each of these delays (two entries for a duplicate).
    Delivered(Vec<u64>),
}

/// The network's state: its fault parameters and the current partition.
#[derive(Clone, Debug)]
pub struct Network {
    /// Message-level faults.
    pub config: NetConfig,
    members: u64,
    partition: Option<Partition>,
    blocked: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    /// A network between members `1..=members`.
    pub fn new(config: NetConfig, members: u64) -> Self {
        Network {
            config,
            members,
            partition: None,
            blocked: BTreeSet::new(),
        }
    }

    /// Installs `partition` (replacing any current one).
    pub fn partition(&mut self, partition: Partition) {
        self.blocked = partition.blocked_links(self.members);
        self.partition = Some(partition);
    }

    /// Removes the current partition.
    pub fn heal(&mut self) {
        self.partition = None;
        self.blocked.clear();
    }

    /// The current partition.
    pub fn current(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }

    /// Whether `from` can currently reach `to`.
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Decides the fate of a message sent now from `from` to `to`.
    pub fn route(&self, rng: &mut SimRng, from: NodeId, to: NodeId) -> Fate {
        if !self.connected(from, to) || rng.chance(self.config.loss) {
            return Fate::Dropped;
        }
        let copies = if rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        Fate::Delivered((0..copies).map(|_| self.delay(rng)).collect())
    }

    /// One message delay.
    pub fn delay(&self, rng: &mut SimRng) -> u64 {
        let c = &self.config;
        if rng.chance(c.tail_chance) {
            rng.range(c.max_delay_us, c.tail_max_us.max(c.max_delay_us + 1))
        } else {
            rng.range(c.min_delay_us, c.max_delay_us.max(c.min_delay_us + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_the_right_links() {
        let halves = Partition::Halves {
            left: vec![1, 2],
            right: vec![3],
        };
        let cut = halves.blocked_links(3);
        assert!(cut.contains(&(1, 3)) && cut.contains(&(3, 2)));
        assert!(!cut.contains(&(1, 2)));
        let asym = Partition::Asymmetric { deaf: 2 }.blocked_links(3);
        assert!(asym.contains(&(1, 2)) && !asym.contains(&(2, 1)));
        let bridge = Partition::Bridge {
            left: vec![1],
            right: vec![3],
            bridge: 2,
        }
        .blocked_links(3);
        assert!(bridge.contains(&(1, 3)) && !bridge.contains(&(1, 2)) && !bridge.contains(&(2, 3)));
        let iso = Partition::Isolated(3).blocked_links(3);
        assert_eq!(iso.len(), 4);
    }

    #[test]
    fn routing_respects_partition_loss_and_duplication() {
        let mut rng = SimRng::new(3);
        let mut net = Network::new(NetConfig::calm(), 3);
        net.partition(Partition::Isolated(1));
        assert_eq!(net.route(&mut rng, 1, 2), Fate::Dropped);
        net.heal();
        match net.route(&mut rng, 1, 2) {
            Fate::Delivered(d) => assert!(d.len() == 1 && d[0] >= 200 && d[0] < 20_000),
            Fate::Dropped => panic!("calm network dropped a message"),
        }
        net.config.duplicate = 1.0;
        assert!(matches!(net.route(&mut rng, 1, 2), Fate::Delivered(d) if d.len() == 2));
        net.config.loss = 1.0;
        assert_eq!(net.route(&mut rng, 1, 2), Fate::Dropped);
    }

    #[test]
    fn random_partitions_are_well_formed() {
        let mut rng = SimRng::new(9);
        for n in [2u64, 3, 5, 7] {
            for _ in 0..200 {
                let p = Partition::random(&mut rng, n);
                if let Partition::Halves { left, right } | Partition::Bridge { left, right, .. } =
                    &p
                {
                    assert!(!left.is_empty() && !right.is_empty(), "{p:?}");
                }
                assert!(!p.blocked_links(n).is_empty(), "{p:?}");
            }
        }
    }
}
