//! The planted bugs of the `bug-injection` feature really break Raft (so a checker that
//! catches them is proven to work).

use crate::testing::storage_with_log;
use crate::{Config, Message, MessageType, RawNode, Role};

fn elected_leader_with_old_entry(cfg: Config) -> RawNode<crate::MemStorage> {
    let mut node = RawNode::new(&cfg, storage_with_log(&[1, 2, 3, 4, 5], &[1, 2], 3)).unwrap();
    node.campaign().unwrap();
    for from in [2, 3] {
        node.step(Message {
            msg_type: MessageType::VoteResponse,
            from,
            to: 1,
            term: 4,
            ..Message::default()
        })
        .unwrap();
    }
    assert_eq!(node.status().soft_state.role, Role::Leader);
    let rd = node.ready();
    node.storage_mut().append(&rd.entries).unwrap();
    node.advance();
    for from in [2, 3] {
        node.step(Message {
            msg_type: MessageType::AppendResponse,
            from,
            to: 1,
            term: 4,
            index: 2,
            ..Message::default()
        })
        .unwrap();
    }
    node
}

#[test]
fn commit_old_terms_bug_breaks_figure_8() {
    let cfg = Config {
        pre_vote: false,
        check_quorum: false,
        bug_commit_old_terms_by_counting: true,
        ..Config::new(1)
    };
    let node = elected_leader_with_old_entry(cfg);
    assert_eq!(
        node.status().hard_state.commit,
        2,
        "the bug commits by counting"
    );
}

#[test]
fn vote_without_log_check_bug_votes_for_stale_candidates() {
    let cfg = Config {
        pre_vote: false,
        check_quorum: false,
        bug_vote_without_log_check: true,
        ..Config::new(1)
    };
    let mut node = RawNode::new(&cfg, storage_with_log(&[1, 2, 3], &[1, 2, 2], 2)).unwrap();
    node.step(Message {
        msg_type: MessageType::Vote,
        from: 2,
        to: 1,
        term: 3,
        index: 1,
        log_term: 1,
        ..Message::default()
    })
    .unwrap();
    let rd = node.ready();
    assert!(!rd.persisted_messages[0].reject, "the bug grants the vote");
}

#[test]
fn read_without_quorum_bug_answers_at_once() {
    let cfg = Config {
        bug_read_index_without_quorum: true,
        ..Config::new(1)
    };
    let mut node = elected_leader_with_old_entry(Config {
        pre_vote: false,
        check_quorum: false,
        ..cfg
    });
    for (from, index) in [(2, 3), (3, 3)] {
        node.step(Message {
            msg_type: MessageType::AppendResponse,
            from,
            to: 1,
            term: 4,
            index,
            ..Message::default()
        })
        .unwrap();
    }
    let rd = node.ready();
    node.advance();
    drop(rd);
    node.read_index(bytes::Bytes::from_static(b"x")).unwrap();
    let rd = node.ready();
    assert_eq!(
        rd.read_states.len(),
        1,
        "answered without a heartbeat round"
    );
    assert!(rd.messages.is_empty());
}
