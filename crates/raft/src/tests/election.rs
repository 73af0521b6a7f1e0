//! Leader election: timeouts, votes, PreVote, CheckQuorum, the disruptive-server rule.

use bytes::Bytes;

use crate::testing::{config, storage_with_log, Network};
use crate::{Message, MessageType, ProposeError, RawNode, ReadIndexError, Role, NO_NODE};

#[test]
fn single_node_elects_itself_and_commits() {
    let mut net = Network::new(1, true, true);
    assert_eq!(net.tick_until_leader(30), Some(1));
    net.propose(1, b"x");
    assert_eq!(net.applied_data(1), vec![Bytes::from_static(b"x")]);
    assert_eq!(net.commit(1), 2);
}

#[test]
fn three_nodes_elect_exactly_one_leader_after_timeout() {
    for (pre_vote, check_quorum) in [(false, false), (true, false), (true, true), (false, true)] {
        let mut net = Network::new(3, pre_vote, check_quorum);
        // Nobody campaigns before the minimum election timeout.
        net.tick_all(9);
        assert_eq!(net.leader(), None);
        let leader = net.tick_until_leader(30).expect("a leader is elected");
        let term = net.term(leader);
        for id in 1..=3 {
            assert_eq!(net.term(id), term);
            let st = net.nodes[&id].status();
            assert_eq!(st.soft_state.leader, leader);
            if id != leader {
                assert_eq!(st.soft_state.role, Role::Follower);
            }
        }
        // The leader's no-op is committed everywhere.
        for id in 1..=3 {
            assert_eq!(net.commit(id), 1);
        }
        // Stays stable under heartbeats.
        net.tick_all(50);
        assert_eq!(net.leader(), Some(leader));
        assert_eq!(net.term(leader), term);
    }
}

#[test]
fn election_timeout_is_randomized_in_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut cfg = config(1, false, false);
        cfg.seed = seed;
        let s = storage_with_log(&[1, 2, 3], &[], 0);
        let mut node = RawNode::new(&cfg, s).unwrap();
        let mut ticks = 0;
        while node.status().soft_state.role == Role::Follower {
            node.tick();
            ticks += 1;
            assert!(ticks < 20, "must campaign before 2T");
        }
        assert!(ticks >= 10, "must not campaign before T");
        seen.insert(ticks);
    }
    assert!(seen.len() > 3, "timeouts are randomized: {seen:?}");
}

#[test]
fn vote_is_persisted_before_reply_and_granted_once_per_term() {
    let s = storage_with_log(&[1, 2, 3], &[], 0);
    let mut node = RawNode::new(&config(1, false, false), s).unwrap();
    let vote = |from| Message {
        msg_type: MessageType::Vote,
        from,
        to: 1,
        term: 1,
        ..Message::default()
    };
    node.step(vote(2)).unwrap();
    let rd = node.ready();
    assert!(
        rd.messages.is_empty(),
        "a vote may not leave before it is durable"
    );
    assert_eq!(rd.persisted_messages.len(), 1);
    assert!(!rd.persisted_messages[0].reject);
    assert_eq!(rd.hard_state.unwrap().vote, 2);
    assert!(rd.must_sync);
    node.advance();
    node.step(vote(3)).unwrap();
    let rd = node.ready();
    assert!(
        rd.persisted_messages[0].reject,
        "second vote in a term is refused"
    );
    node.advance();
    node.step(vote(2)).unwrap();
    let rd = node.ready();
    assert!(
        !rd.persisted_messages[0].reject,
        "repeating the same vote is fine"
    );
}

#[test]
fn vote_refused_to_less_up_to_date_log() {
    // Our log: terms [1, 2]; candidates with (index, term) below it are refused.
    let cases = [
        (1, 2, true),  // shorter log, same last term
        (5, 1, true),  // longer log, older last term
        (2, 2, false), // same
        (1, 3, false), // newer last term
        (3, 2, false), // longer, same term
    ];
    for (index, log_term, reject) in cases {
        let s = storage_with_log(&[1, 2, 3], &[1, 2], 2);
        let mut node = RawNode::new(&config(1, false, false), s).unwrap();
        node.step(Message {
            msg_type: MessageType::Vote,
            from: 2,
            to: 1,
            term: 3,
            index,
            log_term,
            ..Message::default()
        })
        .unwrap();
        let rd = node.ready();
        assert_eq!(
            rd.persisted_messages[0].reject, reject,
            "case {index} {log_term}"
        );
        assert_eq!(rd.hard_state.unwrap().term, 3);
    }
}

#[test]
fn re_election_after_leader_is_cut_off() {
    let mut net = Network::new(5, true, true);
    let old = net.tick_until_leader(30).unwrap();
    let old_term = net.term(old);
    net.isolate(old);
    let mut new = None;
    for _ in 0..60 {
        net.tick_all(1);
        new = net
            .nodes
            .keys()
            .copied()
            .find(|id| *id != old && net.role(*id) == Role::Leader);
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("the majority elects a new leader");
    assert!(net.term(new) > old_term);
    // CheckQuorum: the cut-off leader steps down within an election timeout or two.
    net.tick_all(25);
    assert_ne!(net.role(old), Role::Leader);
    net.propose(new, b"after");
    net.heal();
    net.tick_all(5);
    assert_eq!(net.leader(), Some(new));
    assert_eq!(net.nodes[&old].status().soft_state.leader, new);
    assert_eq!(net.applied_data(old), vec![Bytes::from_static(b"after")]);
    net.check_safety();
}

#[test]
fn minority_cannot_elect_or_commit() {
    let mut net = Network::new(5, false, false);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    net.partition(&[&[1, 2], &[3, 4, 5]]);
    let commit = net.commit(1);
    net.node(1).propose(Bytes::from_static(b"lost")).unwrap();
    net.tick_all(100);
    assert_eq!(net.commit(1), commit, "minority leader cannot commit");
    assert_eq!(net.commit(2), commit);
    assert!(net.applied_data(1).is_empty());
    // Neither 1 nor 2 can become leader of a higher term on their side.
    let majority_leader = net
        .nodes
        .keys()
        .copied()
        .filter(|id| [3, 4, 5].contains(id))
        .find(|id| net.role(*id) == Role::Leader)
        .expect("majority side elects");
    assert_ne!(net.role(2), Role::Leader);
    net.propose(majority_leader, b"won");
    assert_eq!(net.applied_data(3), vec![Bytes::from_static(b"won")]);
    net.heal();
    net.tick_all(30);
    // The minority's uncommitted entry is overwritten.
    for id in 1..=5 {
        assert_eq!(
            net.applied_data(id),
            vec![Bytes::from_static(b"won")],
            "node {id}"
        );
    }
    net.check_safety();
}

#[test]
fn pre_vote_keeps_rejoining_node_from_bumping_term() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    let term = net.term(1);
    net.isolate(3);
    net.tick_all(100);
    assert_eq!(net.term(3), term, "pre-elections do not bump the term");
    assert_eq!(net.role(3), Role::PreCandidate);
    net.heal();
    net.tick_all(20);
    assert_eq!(net.leader(), Some(1), "the healthy leader is not disrupted");
    assert_eq!(net.term(1), term);
    assert_eq!(net.role(3), Role::Follower);
}

#[test]
fn without_pre_vote_an_isolated_node_bumps_its_term() {
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    let term = net.term(1);
    net.isolate(3);
    net.tick_all(100);
    assert!(net.term(3) > term, "contrast with PreVote");
}

#[test]
fn disruptive_server_rule_ignores_votes_while_leader_is_live() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    let term = net.term(1);
    // 3 campaigns on its own (e.g. a spurious timeout). Its log is as up-to-date as anyone's,
    // so only the rule stops 1 and 2 from granting its pre-vote: they heard from the leader
    // within the minimum election timeout and ignore the request.
    net.node(3).campaign().unwrap();
    net.stabilize();
    assert_eq!(net.role(2), Role::Follower);
    assert_eq!(net.term(2), term);
    assert_eq!(net.term(3), term);
    assert_eq!(net.nodes[&2].status().hard_state.vote, 1);
    net.tick_all(5);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.term(1), term);
    assert_eq!(net.role(3), Role::Follower);
}

#[test]
fn check_quorum_leader_steps_down_alone() {
    let mut net = Network::new(3, false, true);
    net.campaign(1);
    net.isolate(1);
    net.tick_all(10);
    net.tick_all(11);
    assert_eq!(net.role(1), Role::Follower);
    assert_eq!(net.nodes[&1].status().soft_state.leader, NO_NODE);
}

#[test]
fn proposals_without_leader_fail_and_followers_forward() {
    let mut net = Network::new(3, false, false);
    assert_eq!(
        net.node(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NoLeader)
    );
    assert_eq!(
        net.node(2).read_index(Bytes::from_static(b"r")),
        Err(ReadIndexError::NoLeader)
    );
    net.campaign(1);
    net.propose(2, b"forwarded");
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), vec![Bytes::from_static(b"forwarded")]);
    }
}

#[test]
fn stale_term_messages_are_answered_with_current_term() {
    let ids = [1, 2, 3];
    let mut net = Network::with_configs(
        ids.iter()
            .map(|id| (config(*id, true, true), storage_with_log(&ids, &[], 5)))
            .collect(),
    );
    net.campaign(1);
    let term = net.term(1);
    assert_eq!(term, 6);
    // A heartbeat from a deposed leader of an older term gets an answer carrying our term.
    net.node(2)
        .step(Message {
            msg_type: MessageType::Heartbeat,
            from: 3,
            to: 2,
            term: term - 1,
            ..Message::default()
        })
        .unwrap();
    let rd = net.node(2).ready();
    let m = rd
        .messages
        .iter()
        .chain(&rd.persisted_messages)
        .find(|m| m.to == 3)
        .unwrap();
    assert_eq!(m.term, term);
    net.node(2).advance();
}
