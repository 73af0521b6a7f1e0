//! Membership changes: simple, joint consensus, learners.

use bytes::Bytes;

use crate::testing::{config, storage_with_log, Network};
use crate::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ProposeError, Role,
};

fn cc(transition: ConfChangeTransition, changes: &[(ConfChangeType, u64)]) -> ConfChange {
    ConfChange {
        transition,
        changes: changes
            .iter()
            .map(|(change_type, node_id)| ConfChangeSingle {
                change_type: *change_type,
                node_id: *node_id,
            })
            .collect(),
        context: Bytes::new(),
    }
}

#[test]
fn add_a_voter_which_catches_up_and_counts() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.propose(1, b"a");
    net.add_node(&config(4, true, true), storage_with_log(&[1, 2, 3], &[], 0));
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::AddNode, 4)],
        ))
        .unwrap();
    net.stabilize();
    net.tick_all(2);
    for id in 1..=4 {
        assert_eq!(
            net.nodes[&id].status().conf_state.voters,
            vec![1, 2, 3, 4],
            "node {id}"
        );
    }
    assert_eq!(net.applied_data(4), vec![Bytes::from_static(b"a")]);
    // With 2 and 3 down, 1 and 4 are not a majority of 4: nothing commits.
    net.isolate(2);
    net.isolate(3);
    let commit = net.commit(1);
    net.node(1).propose(Bytes::from_static(b"b")).unwrap();
    net.stabilize();
    assert_eq!(net.commit(1), commit);
    net.check_safety();
}

#[test]
fn remove_a_voter_and_the_leader() {
    let mut net = Network::new(3, false, true);
    net.campaign(1);
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::RemoveNode, 3)],
        ))
        .unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&1].status().conf_state.voters, vec![1, 2]);
    net.isolate(3);
    net.propose(1, b"x");
    assert_eq!(net.applied_data(2), vec![Bytes::from_static(b"x")]);
    // Removing the leader: it steps down once it applies the change; 2 takes over.
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::RemoveNode, 1)],
        ))
        .unwrap();
    net.stabilize();
    assert_ne!(net.role(1), Role::Leader);
    net.isolate(1);
    let leader = net.tick_until_leader(40);
    assert_eq!(leader, Some(2));
}

#[test]
fn joint_consensus_replaces_a_voter_and_leaves_automatically() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.add_node(&config(4, true, true), storage_with_log(&[1, 2, 3], &[], 0));
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[
                (ConfChangeType::AddNode, 4),
                (ConfChangeType::RemoveNode, 3),
            ],
        ))
        .unwrap();
    net.stabilize();
    net.tick_all(2);
    for id in [1, 2, 4] {
        let cs = net.nodes[&id].status().conf_state;
        assert_eq!(cs.voters, vec![1, 2, 4], "node {id}");
        assert!(
            cs.voters_outgoing.is_empty(),
            "auto-left the joint config on {id}"
        );
    }
    net.isolate(3);
    net.propose(1, b"after");
    assert_eq!(net.applied_data(4), vec![Bytes::from_static(b"after")]);
}

#[test]
fn explicit_joint_needs_a_leave_and_one_change_at_a_time() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.add_node(&config(4, true, true), storage_with_log(&[1, 2, 3], &[], 0));
    let enter = cc(
        ConfChangeTransition::Explicit,
        &[
            (ConfChangeType::AddNode, 4),
            (ConfChangeType::AddLearner, 3),
        ],
    );
    net.node(1).propose_conf_change(enter.clone()).unwrap();
    assert_eq!(
        net.node(1).propose_conf_change(enter.clone()),
        Err(ProposeError::ConfChangePending)
    );
    net.stabilize();
    net.tick_all(2);
    let cs = net.nodes[&1].status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 4]);
    assert_eq!(cs.voters_outgoing, vec![1, 2, 3]);
    assert_eq!(cs.learners_next, vec![3]);
    assert!(matches!(
        net.node(1).propose_conf_change(enter),
        Err(ProposeError::InvalidConfChange(_))
    ));
    net.node(1)
        .propose_conf_change(ConfChange::default())
        .unwrap();
    net.stabilize();
    let cs = net.nodes[&1].status().conf_state;
    assert_eq!(cs.voters, vec![1, 2, 4]);
    assert!(cs.voters_outgoing.is_empty());
    assert_eq!(cs.learners, vec![3]);
    assert!(matches!(
        net.node(1).propose_conf_change(ConfChange::default()),
        Err(ProposeError::InvalidConfChange(_))
    ));
}

#[test]
fn learner_replicates_but_never_campaigns_or_counts() {
    let mut net = Network::new(1, true, true);
    net.campaign(1);
    net.add_node(&config(2, true, true), storage_with_log(&[1], &[], 0));
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::AddLearner, 2)],
        ))
        .unwrap();
    net.stabilize();
    net.propose(1, b"x");
    net.tick_all(2);
    assert_eq!(net.applied_data(2), vec![Bytes::from_static(b"x")]);
    assert_eq!(net.nodes[&2].status().conf_state.learners, vec![2]);
    // The learner's absence does not block the single voter.
    net.isolate(2);
    net.propose(1, b"y");
    assert_eq!(net.applied[&1].len(), 2);
    net.tick_all(100);
    assert_eq!(net.role(2), Role::Follower, "learners never campaign");
    assert_eq!(net.leader(), Some(1));
}

#[test]
fn new_member_with_empty_storage_gets_a_snapshot() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.propose(1, b"a");
    net.node(1)
        .propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::AddNode, 4)],
        ))
        .unwrap();
    net.stabilize();
    net.compact(1);
    // Knows nothing, not even the initial configuration: the snapshot brings it.
    net.add_node(&config(4, true, true), crate::MemStorage::new());
    net.tick_all(3);
    assert_eq!(net.nodes[&4].status().conf_state.voters, vec![1, 2, 3, 4]);
    assert_eq!(net.applied_data(4), vec![Bytes::from_static(b"a")]);
}

#[test]
fn invalid_conf_changes_are_refused_at_proposal() {
    let mut net = Network::new(1, true, true);
    net.campaign(1);
    assert!(matches!(
        net.node(1).propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[(ConfChangeType::RemoveNode, 1)]
        )),
        Err(ProposeError::InvalidConfChange(_))
    ));
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    assert!(matches!(
        net.node(1).propose_conf_change(cc(
            ConfChangeTransition::Auto,
            &[
                (ConfChangeType::RemoveNode, 1),
                (ConfChangeType::RemoveNode, 2),
                (ConfChangeType::RemoveNode, 3)
            ]
        )),
        Err(ProposeError::InvalidConfChange(_))
    ));
}
