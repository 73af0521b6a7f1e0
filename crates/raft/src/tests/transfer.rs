//! Leadership transfer.

use bytes::Bytes;

use crate::testing::Network;
use crate::{MessageType, ProposeError, Role, NO_NODE};

#[test]
fn transfer_to_up_to_date_follower() {
    for (pre_vote, check_quorum) in [(false, false), (true, true)] {
        let mut net = Network::new(3, pre_vote, check_quorum);
        net.campaign(1);
        let term = net.term(1);
        net.node(1).transfer_leadership(2);
        net.stabilize();
        assert_eq!(net.leader(), Some(2));
        assert_eq!(net.term(2), term + 1);
        assert_eq!(net.role(1), Role::Follower);
    }
}

#[test]
fn transfer_catches_up_a_lagging_target_first() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.heal();
    net.node(1).transfer_leadership(3);
    net.stabilize();
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.applied_data(3), vec![Bytes::from_static(b"a")]);
    let timeout_now = net
        .delivered
        .iter()
        .filter(|m| m.msg_type == MessageType::TimeoutNow)
        .count();
    assert_eq!(timeout_now, 1);
}

#[test]
fn proposals_refused_during_transfer_and_transfer_times_out() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.node(1).transfer_leadership(3);
    assert_eq!(net.nodes[&1].status().lead_transferee, 3);
    assert_eq!(
        net.node(1).propose(Bytes::from_static(b"b")),
        Err(ProposeError::TransferInProgress { transferee: 3 })
    );
    net.tick_all(10);
    assert_eq!(net.nodes[&1].status().lead_transferee, NO_NODE);
    assert_eq!(net.leader(), Some(1));
    net.propose(1, b"c");
    assert_eq!(net.applied[&2].len(), 2);
}

#[test]
fn transfer_to_self_or_non_member_is_ignored() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.node(1).transfer_leadership(1);
    net.node(1).transfer_leadership(9);
    assert_eq!(net.nodes[&1].status().lead_transferee, NO_NODE);
    net.stabilize();
    assert_eq!(net.leader(), Some(1));
}
