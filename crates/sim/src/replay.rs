//! The one command that replays a run: the seed, plus every setting in which the run differs
//! from what [`SimConfig::from_seed`] (or [`SimConfig::core_from_seed`]) draws for that seed
//! (tests and hunts override the fault mix, group size, ...), plus the planted bug if any.
//! [`apply_override`] parses those settings back (the `sim` binary's flags).

use crate::cluster::{DiskKind, FaultMix, SimConfig};
use crate::workload::Workload;

/// Names of the bugs `sim --plant NAME` can plant (with the `bug-injection` feature).
pub const PLANTS: &[&str] = &[
    "vote-without-log-check",
    "read-index-without-quorum",
    "commit-old-terms-by-counting",
];

/// The Raft config switch that plants bug `name`.
#[cfg(feature = "bug-injection")]
pub fn plant_tweak(name: &str) -> Option<fn(&mut quorum_raft::Config)> {
    Some(match name {
        "vote-without-log-check" => |c| c.bug_vote_without_log_check = true,
        "read-index-without-quorum" => |c| c.bug_read_index_without_quorum = true,
        "commit-old-terms-by-counting" => |c| c.bug_commit_old_terms_by_counting = true,
        _ => return None,
    })
}

/// The names of a fault mix, comma-separated (`none` for no fault).
pub fn faults_to_string(f: &FaultMix) -> String {
    let names: Vec<&str> = [
        (f.partitions, "partitions"),
        (f.crashes, "crashes"),
        (f.pauses, "pauses"),
        (f.flaky_network, "flaky"),
        (f.clock_skew, "skew"),
        (f.leader_churn, "churn"),
        (f.figure8, "figure8"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Parses [`faults_to_string`]'s format.
pub fn faults_from_str(s: &str) -> Result<FaultMix, String> {
    let mut f = FaultMix::none();
    for name in s.split(',').filter(|n| !n.is_empty() && *n != "none") {
        match name {
            "partitions" => f.partitions = true,
            "crashes" => f.crashes = true,
            "pauses" => f.pauses = true,
            "flaky" => f.flaky_network = true,
            "skew" => f.clock_skew = true,
            "churn" => f.leader_churn = true,
            "figure8" => f.figure8 = true,
            other => return Err(format!("unknown fault {other:?}")),
        }
    }
    Ok(f)
}

/// Applies one replay setting (`flag` without its dashes) to `cfg`.
pub fn apply_override(cfg: &mut SimConfig, flag: &str, value: &str) -> Result<(), String> {
    let num = |v: &str| v.parse::<u64>().map_err(|e| format!("--{flag}: {e}"));
    match flag {
        "members" => cfg.members = num(value)? as usize,
        "clients" => cfg.clients = num(value)? as usize,
        "faults" => cfg.faults = faults_from_str(value)?,
        "max-msg-bytes" => cfg.max_msg_bytes = num(value)?,
        "workload" => {
            cfg.workload = match value {
                "register" => Workload::Register,
                "bank" => Workload::Bank,
                other => return Err(format!("unknown workload {other:?}")),
            }
        }
        "fault-interval" => {
            let (lo, hi) = value
                .split_once(',')
                .ok_or("--fault-interval needs LO,HI (µs)")?;
            cfg.fault_interval_us = (num(lo)?, num(hi)?);
        }
        "phases" => {
            let (fault, heal) = value
                .split_once(',')
                .ok_or("--phases needs FAULT,HEAL (µs)")?;
            cfg.fault_phase_us = num(fault)?;
            cfg.heal_phase_us = num(heal)?;
        }
        "dup-proposals" => cfg.duplicate_proposals = num(value)? != 0,
        _ => return Err(format!("unknown setting --{flag}")),
    }
    Ok(())
}

impl SimConfig {
    /// The command that replays this run with full tracing.
    pub fn replay_command(&self) -> String {
        let core = self.disk == DiskKind::Core;
        let base = if core {
            SimConfig::core_from_seed(self.seed)
        } else {
            SimConfig::from_seed(self.seed)
        };
        let mut flags = String::new();
        if core {
            flags.push_str(" --core");
        }
        if self.members != base.members {
            flags.push_str(&format!(" --members {}", self.members));
        }
        if self.clients != base.clients {
            flags.push_str(&format!(" --clients {}", self.clients));
        }
        if self.faults != base.faults {
            flags.push_str(&format!(" --faults {}", faults_to_string(&self.faults)));
        }
        if self.max_msg_bytes != base.max_msg_bytes {
            flags.push_str(&format!(" --max-msg-bytes {}", self.max_msg_bytes));
        }
        if self.workload != base.workload {
            let w = match self.workload {
                Workload::Register => "register",
                Workload::Bank => "bank",
            };
            flags.push_str(&format!(" --workload {w}"));
        }
        if self.fault_interval_us != base.fault_interval_us {
            let (lo, hi) = self.fault_interval_us;
            flags.push_str(&format!(" --fault-interval {lo},{hi}"));
        }
        if (self.fault_phase_us, self.heal_phase_us) != (base.fault_phase_us, base.heal_phase_us) {
            flags.push_str(&format!(
                " --phases {},{}",
                self.fault_phase_us, self.heal_phase_us
            ));
        }
        if self.duplicate_proposals != base.duplicate_proposals {
            flags.push_str(&format!(
                " --dup-proposals {}",
                u8::from(self.duplicate_proposals)
            ));
        }
        let features = match self.plant {
            Some(name) => {
                flags.push_str(&format!(" --plant {name}"));
                " --features bug-injection"
            }
            None => "",
        };
        format!(
            "cargo run -p quorum-sim --release{features} -- --seed {}{flags} --trace",
            self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_round_trip_through_the_replay_command() {
        let mut cfg = SimConfig::from_seed(77);
        cfg.members = 7;
        cfg.clients = 5;
        cfg.faults = FaultMix::figure8();
        cfg.fault_interval_us = (1, 2);
        cfg.duplicate_proposals = true;
        cfg.plant = Some("commit-old-terms-by-counting");
        let cmd = cfg.replay_command();
        assert!(cmd.contains("--features bug-injection"), "{cmd}");
        let args: Vec<&str> = cmd.split(" -- ").nth(1).unwrap().split(' ').collect();
        let mut replayed = SimConfig::from_seed(77);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match *flag {
                "--seed" | "--plant" => {
                    it.next();
                }
                "--trace" => {}
                f => apply_override(&mut replayed, &f[2..], it.next().unwrap()).unwrap(),
            }
        }
        assert_eq!(format!("{replayed:?}"), format!("{cfg:?}"));
        assert_eq!(replayed.fault_interval_us, (1, 2));
        assert!(replayed.duplicate_proposals);
        assert_eq!(
            SimConfig::from_seed(77).replay_command(),
            "cargo run -p quorum-sim --release -- --seed 77 --trace"
        );
        assert_eq!(faults_from_str("none").unwrap(), FaultMix::none());
        assert_eq!(
            faults_from_str(&faults_to_string(&FaultMix::all())).unwrap(),
            FaultMix::all()
        );
        assert!(faults_from_str("bogus").is_err());
    }
}
