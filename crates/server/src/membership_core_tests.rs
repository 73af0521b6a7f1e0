//! Membership changes through a real core (WAL on disk, redb store): proposals are checked,
//! applied to the registry and to Raft's configuration together, reported to the outbox, and a
//! restart replays nothing twice.

use quorum_raft::{Message, NodeId};
use quorum_storage::RealFs;

use crate::core::{Core, Input, Outbox, Output};
use crate::error::ServerError;
use crate::member::MemberInfo;
use crate::membership::{MemberChange, Op, Registry};

#[derive(Default)]
struct Collect {
    done: Vec<u64>,
    failed: Vec<(u64, String)>,
    registries: Vec<Registry>,
}

impl Outbox for Collect {
    fn send(&mut self, _messages: Vec<Message>) {}
    fn output(&mut self, output: Output) {
        match output {
            Output::Done { token } => self.done.push(token),
            Output::Failed { token, error } => self.failed.push((token, error.to_string())),
            _ => {}
        }
    }
    fn membership_changed(&mut self, registry: &Registry) {
        self.registries.push(registry.clone());
    }
}

fn member(id: NodeId, url: &str, learner: bool) -> MemberInfo {
    MemberInfo {
        id,
        name: String::new(),
        peer_urls: vec![url.to_string()],
        client_urls: Vec::new(),
        is_learner: learner,
    }
}

fn open(dir: &std::path::Path, registry: Registry) -> Core<RealFs> {
    crate::core_test_util::open_core(dir, &[1]).with_registry(registry)
}

fn run(core: &mut Core<RealFs>, out: &mut Collect, input: Option<Input>, ticks: u64) {
    if let Some(i) = input {
        core.handle(i, out);
    }
    for t in 0..ticks {
        core.handle(Input::Tick { now_ms: t * 10 }, out);
        core.process(out).unwrap();
    }
    core.process(out).unwrap();
}

fn propose(core: &mut Core<RealFs>, out: &mut Collect, op: Op, m: MemberInfo, id: u64) {
    let change = MemberChange {
        op,
        member: m,
        request_id: id,
    };
    run(core, out, Some(Input::ProposeMemberChange { change }), 3);
}

#[test]
fn changes_apply_to_registry_and_raft_together_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let boot = Registry::bootstrap(vec![member(1, "http://h:1", false)]);
    let mut core = open(dir.path(), boot);
    let mut out = Collect::default();
    run(&mut core, &mut out, None, 10);
    assert_eq!(core.leader(), 1, "a single voter elects itself");

    propose(
        &mut core,
        &mut out,
        Op::Add,
        member(9, "http://h:9", true),
        100,
    );
    assert_eq!(out.done, vec![100]);
    assert!(core.registry().member(9).is_some_and(|m| m.is_learner));
    assert_eq!(core.raft_status().conf_state.learners, vec![9]);
    assert_eq!(out.registries.last(), Some(core.registry()));

    // Refused before proposing: a second learner, a taken URL, a learner out of sync.
    propose(
        &mut core,
        &mut out,
        Op::Add,
        member(10, "http://h:10", true),
        101,
    );
    propose(
        &mut core,
        &mut out,
        Op::Add,
        member(11, "http://h:1", false),
        102,
    );
    propose(&mut core, &mut out, Op::Promote, member(9, "", true), 103);
    let failed: Vec<(u64, String)> = out.failed.drain(..).collect();
    assert_eq!(
        failed,
        vec![
            (101, ServerError::TooManyLearners.to_string()),
            (102, ServerError::PeerUrlExists.to_string()),
            (103, ServerError::LearnerNotReady.to_string()),
        ]
    );

    // An update changes the registry only.
    propose(
        &mut core,
        &mut out,
        Op::Update,
        member(9, "http://h:99", true),
        104,
    );
    assert_eq!(out.done, vec![100, 104]);
    assert_eq!(
        core.registry().member(9).map(|m| m.peer_urls.clone()),
        Some(vec!["http://h:99".to_string()])
    );
    assert_eq!(core.raft_status().conf_state.learners, vec![9]);

    propose(&mut core, &mut out, Op::Remove, member(9, "", true), 105);
    assert_eq!(out.done, vec![100, 104, 105]);
    assert!(core.registry().is_removed(9));
    assert!(core.raft_status().conf_state.learners.is_empty());
    let registry = core.registry().clone();
    let applied = core.applied();
    drop(core);

    // Restart from the persisted registry (what the shell writes to cluster.json): nothing is
    // applied twice, and Raft's configuration is the same.
    let mut core = open(dir.path(), registry.clone());
    let mut out = Collect::default();
    run(&mut core, &mut out, None, 10);
    assert!(core.applied() >= applied);
    assert_eq!(core.registry(), &registry);
    assert!(out.done.is_empty() && out.failed.is_empty());
    assert!(core.raft_status().conf_state.learners.is_empty());
    assert_eq!(core.raft_status().conf_state.voters, vec![1]);

    // A removed id never comes back.
    propose(
        &mut core,
        &mut out,
        Op::Add,
        member(9, "http://h:9", false),
        106,
    );
    assert_eq!(
        out.failed,
        vec![(106, ServerError::MemberNotFound.to_string())]
    );
}
