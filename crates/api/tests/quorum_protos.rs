//! Quorum's own protos: the peer Message mirrors quorum-raft's MessageType variant for variant,
//! and log payloads round-trip.

use prost::Message as _;
use quorum_api::internal::{InternalRaftRequest, RequestHeader};
use quorum_api::peer::{Batch, Entry, EntryKind, Envelope, Message, MessageType, SnapshotMetadata};

#[test]
fn message_type_has_exactly_raft_variants() {
    let names: Vec<&str> = (0..=13)
        .filter_map(|n| MessageType::try_from(n).ok())
        .map(|t| t.as_str_name())
        .collect();
    assert_eq!(
        names,
        [
            "MESSAGE_TYPE_APPEND",
            "MESSAGE_TYPE_APPEND_RESPONSE",
            "MESSAGE_TYPE_VOTE",
            "MESSAGE_TYPE_VOTE_RESPONSE",
            "MESSAGE_TYPE_PRE_VOTE",
            "MESSAGE_TYPE_PRE_VOTE_RESPONSE",
            "MESSAGE_TYPE_HEARTBEAT",
            "MESSAGE_TYPE_HEARTBEAT_RESPONSE",
            "MESSAGE_TYPE_SNAPSHOT",
            "MESSAGE_TYPE_TIMEOUT_NOW",
            "MESSAGE_TYPE_READ_INDEX",
            "MESSAGE_TYPE_READ_INDEX_RESPONSE",
            "MESSAGE_TYPE_PROPOSE",
        ]
    );
}

#[test]
fn batch_round_trips_and_group_id_is_field_1() {
    let batch = Batch {
        cluster_id: 9,
        from_member: 2,
        messages: vec![Envelope {
            group_id: 1,
            message: Some(Message {
                msg_type: MessageType::Append as i32,
                to: 3,
                from: 2,
                term: 5,
                entries: vec![Entry {
                    term: 5,
                    index: 10,
                    kind: EntryKind::ConfChange as i32,
                    data: "x".into(),
                }],
                snapshot: Some(SnapshotMetadata::default()),
                ..Default::default()
            }),
        }],
    };
    let bytes = batch.encode_to_vec();
    assert_eq!(&bytes[..4], &[0x08, 9, 0x10, 2]);
    assert_eq!(Batch::decode(bytes.as_slice()).unwrap(), batch);
    let env = batch.messages[0].encode_to_vec();
    assert_eq!(&env[..2], &[0x08, 1]);
}

#[test]
fn internal_request_header_is_field_100() {
    let req = InternalRaftRequest {
        header: Some(RequestHeader {
            id: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    // Tag 100, wire type 2 = 802 = varint 0xa2 0x06; then length 2: id = 1.
    assert_eq!(req.encode_to_vec(), [0xa2, 0x06, 2, 0x08, 1]);
}
