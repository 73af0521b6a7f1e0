//! Lease queries on a leader whose apply lags its commit (asynchronous persistence lets two
//! followers commit an entry before the leader's own fsync, and so before the leader applies
//! it): the leader must answer only once it applied what was committed when the query came.

use bytes::Bytes;
use prost::Message as _;
use quorum_api::etcdserverpb::LeaseGrantRequest;
use quorum_api::internal::InternalRaftRequest;
use quorum_raft::{Message, MessageType, NodeId};
use quorum_storage::RealFs;

use crate::core::{Core, Input, Outbox, Output};

#[derive(Default)]
struct Collect {
    sent: Vec<Message>,
    ttls: Vec<(u64, Option<i64>)>,
    applied: Vec<u64>,
}

impl Outbox for Collect {
    fn send(&mut self, messages: Vec<Message>) {
        self.sent.extend(messages);
    }
    fn output(&mut self, output: Output) {
        match output {
            Output::LeaseTtl { token, result } => self.ttls.push((token, result.unwrap())),
            Output::Applied { id, .. } => self.applied.push(id),
            _ => {}
        }
    }
}

fn open(dir: &std::path::Path) -> Core<RealFs> {
    let mut core = crate::core_test_util::open_core(dir, &[1, 2, 3]);
    core.set_async_persist(true);
    core
}

fn reply(to: &Message, msg_type: MessageType, index: u64) -> Message {
    Message {
        msg_type,
        from: to.to,
        to: to.from,
        term: to.term,
        index,
        ..Message::default()
    }
}

/// Answers the votes of `from` (2 and 3 grant everything).
fn answer_votes(core: &mut Core<RealFs>, out: &mut Collect) {
    for m in std::mem::take(&mut out.sent) {
        let t = match m.msg_type {
            MessageType::PreVote => MessageType::PreVoteResponse,
            MessageType::Vote => MessageType::VoteResponse,
            _ => continue,
        };
        core.handle(Input::Message(reply(&m, t, 0)), out);
    }
    core.process(out).unwrap();
}

/// Both followers acknowledge everything up to `index`.
fn ack(core: &mut Core<RealFs>, out: &mut Collect, index: u64, term: u64) {
    for from in [2 as NodeId, 3] {
        let m = Message {
            msg_type: MessageType::AppendResponse,
            from,
            to: 1,
            term,
            index,
            ..Message::default()
        };
        core.handle(Input::Message(m), out);
    }
    core.process(out).unwrap();
}

fn sync(core: &mut Core<RealFs>, out: &mut Collect) {
    if core.take_sync_request().is_some() {
        let ticket = core.log().sync_handle().sync().unwrap();
        core.handle(Input::Synced { ticket }, out);
    }
    core.process(out).unwrap();
}

#[test]
fn a_lease_query_waits_for_the_leaders_apply_to_reach_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = open(dir.path());
    let mut out = Collect::default();
    let mut now = 0;
    while core.leader() != 1 {
        now += 10;
        assert!(now < 10_000, "no leader");
        core.handle(Input::Tick { now_ms: now }, &mut out);
        core.process(&mut out).unwrap();
        answer_votes(&mut core, &mut out);
        sync(&mut core, &mut out);
    }
    let term = core.term();
    let last = core.last_index();
    ack(&mut core, &mut out, last, term);
    sync(&mut core, &mut out);
    assert_eq!(
        core.applied(),
        core.last_index(),
        "the leader's own entry applied"
    );

    // Grant a lease: the followers acknowledge it before the leader's own fsync completes.
    let grant = InternalRaftRequest {
        lease_grant: Some(LeaseGrantRequest { ttl: 30, id: 77 }),
        id: 5,
        ..Default::default()
    };
    core.handle(
        Input::Propose {
            id: 5,
            data: Bytes::from(grant.encode_to_vec()),
        },
        &mut out,
    );
    core.process(&mut out).unwrap();
    let index = core.last_index();
    ack(&mut core, &mut out, index, term);
    assert!(
        core.applied() < index,
        "committed by the followers, not applied here yet"
    );
    assert!(out.applied.is_empty());

    // A keep-alive and a TTL query now must not report the lease as missing: they wait.
    core.handle(Input::LeaseRenew { token: 8, id: 77 }, &mut out);
    core.handle(Input::LeaseRemaining { token: 9, id: 77 }, &mut out);
    core.process(&mut out).unwrap();
    assert!(
        out.ttls.is_empty(),
        "answered before applying: {:?}",
        out.ttls
    );

    // The leader's fsync completes: it applies the grant, then answers both.
    let ticket = core.take_sync_request();
    assert!(ticket.is_some(), "the grant's write waits for an fsync");
    let durable = core.log().sync_handle().sync().unwrap();
    core.handle(Input::Synced { ticket: durable }, &mut out);
    core.process(&mut out).unwrap();
    core.process(&mut out).unwrap();
    assert_eq!(out.applied, vec![5]);
    assert_eq!(out.ttls.len(), 2, "{:?}", out.ttls);
    for (_, ttl) in &out.ttls {
        assert!(
            matches!(ttl, Some(t) if *t > 0),
            "lease found: {:?}",
            out.ttls
        );
    }
}
