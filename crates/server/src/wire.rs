//! Mapping between the Raft crate's plain types and the peer protocol's protobuf messages
//! (`quorum.peer`). Decoding never panics: a malformed message from the network is an error.

use bytes::Bytes;
use quorum_api::peer as pb;
use quorum_raft as raft;

/// A peer message that cannot be turned into a Raft message.
#[derive(Debug, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub struct WireError(pub String);

/// Raft message → protobuf (the snapshot's image travels separately; only its metadata here).
pub fn message_to_wire(m: &raft::Message) -> pb::Message {
    pb::Message {
        msg_type: msg_type_to_wire(m.msg_type) as i32,
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m.entries.iter().map(entry_to_wire).collect(),
        commit: m.commit,
        snapshot: m.snapshot.as_ref().map(|s| meta_to_wire(&s.metadata)),
        reject: m.reject,
        reject_hint: m.reject_hint,
        context: m.context.clone(),
    }
}

/// Protobuf → Raft message.
pub fn message_from_wire(m: pb::Message) -> Result<raft::Message, WireError> {
    let msg_type = pb::MessageType::try_from(m.msg_type)
        .map_err(|_| WireError(format!("unknown message type {}", m.msg_type)))?;
    let entries = m
        .entries
        .into_iter()
        .map(entry_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(raft::Message {
        msg_type: msg_type_from_wire(msg_type),
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries,
        commit: m.commit,
        snapshot: m.snapshot.map(|meta| raft::Snapshot {
            metadata: meta_from_wire(meta),
            data: Bytes::new(),
        }),
        reject: m.reject,
        reject_hint: m.reject_hint,
        context: m.context,
    })
}

fn entry_to_wire(e: &raft::Entry) -> pb::Entry {
    pb::Entry {
        term: e.term,
        index: e.index,
        kind: match e.kind {
            raft::EntryKind::Normal => pb::EntryKind::Normal,
            raft::EntryKind::ConfChange => pb::EntryKind::ConfChange,
        } as i32,
        data: e.data.clone(),
    }
}

fn entry_from_wire(e: pb::Entry) -> Result<raft::Entry, WireError> {
    let kind = match pb::EntryKind::try_from(e.kind) {
        Ok(pb::EntryKind::Normal) => raft::EntryKind::Normal,
        Ok(pb::EntryKind::ConfChange) => raft::EntryKind::ConfChange,
        Err(_) => return Err(WireError(format!("unknown entry kind {}", e.kind))),
    };
    Ok(raft::Entry {
        term: e.term,
        index: e.index,
        kind,
        data: e.data,
    })
}

/// Snapshot metadata → protobuf.
pub fn meta_to_wire(m: &raft::SnapshotMetadata) -> pb::SnapshotMetadata {
    let cs = &m.conf_state;
    pb::SnapshotMetadata {
        index: m.index,
        term: m.term,
        conf_state: Some(pb::ConfState {
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
        }),
    }
}

/// Protobuf → snapshot metadata.
pub fn meta_from_wire(m: pb::SnapshotMetadata) -> raft::SnapshotMetadata {
    let cs = m.conf_state.unwrap_or_default();
    raft::SnapshotMetadata {
        index: m.index,
        term: m.term,
        conf_state: raft::ConfState {
            voters: cs.voters,
            learners: cs.learners,
            voters_outgoing: cs.voters_outgoing,
            learners_next: cs.learners_next,
            auto_leave: cs.auto_leave,
        },
    }
}

fn msg_type_to_wire(t: raft::MessageType) -> pb::MessageType {
    use pb::MessageType as W;
    use raft::MessageType as R;
    match t {
        R::Append => W::Append,
        R::AppendResponse => W::AppendResponse,
        R::Vote => W::Vote,
        R::VoteResponse => W::VoteResponse,
        R::PreVote => W::PreVote,
        R::PreVoteResponse => W::PreVoteResponse,
        R::Heartbeat => W::Heartbeat,
        R::HeartbeatResponse => W::HeartbeatResponse,
        R::Snapshot => W::Snapshot,
        R::TimeoutNow => W::TimeoutNow,
        R::ReadIndex => W::ReadIndex,
        R::ReadIndexResponse => W::ReadIndexResponse,
        R::Propose => W::Propose,
    }
}

fn msg_type_from_wire(t: pb::MessageType) -> raft::MessageType {
    use pb::MessageType as W;
    use raft::MessageType as R;
    match t {
        W::Append => R::Append,
        W::AppendResponse => R::AppendResponse,
        W::Vote => R::Vote,
        W::VoteResponse => R::VoteResponse,
        W::PreVote => R::PreVote,
        W::PreVoteResponse => R::PreVoteResponse,
        W::Heartbeat => R::Heartbeat,
        W::HeartbeatResponse => R::HeartbeatResponse,
        W::Snapshot => R::Snapshot,
        W::TimeoutNow => R::TimeoutNow,
        W::ReadIndex => R::ReadIndex,
        W::ReadIndexResponse => R::ReadIndexResponse,
        W::Propose => R::Propose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = raft::Message {
            msg_type: raft::MessageType::Append,
            to: 2,
            from: 1,
            term: 7,
            log_term: 6,
            index: 41,
            entries: vec![raft::Entry {
                term: 7,
                index: 42,
                kind: raft::EntryKind::ConfChange,
                data: Bytes::from_static(b"x"),
            }],
            commit: 40,
            snapshot: None,
            reject: true,
            reject_hint: 3,
            context: Bytes::from_static(b"ctx"),
        };
        assert_eq!(message_from_wire(message_to_wire(&m)).unwrap(), m);
    }

    #[test]
    fn unknown_enum_values_are_errors() {
        let w = pb::Message {
            msg_type: 99,
            ..Default::default()
        };
        assert!(message_from_wire(w).is_err());
    }
}
