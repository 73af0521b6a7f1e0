//! Wire-format checks: messages encoded by the generated code must match bytes computed by hand
//! from etcd's field numbers, and decoding those bytes must give the message back. These are
//! the fields most likely to be numbered wrong (etcd's own numbering skips and jumps).

use prost::Message;
use quorum_api::etcdserverpb::{
    compare, range_request, request_op, watch_create_request, watch_request, Compare,
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, StatusResponse,
    TxnRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use quorum_api::mvccpb::{event::EventType, Event, KeyValue};

fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(msg.encode_to_vec(), expected, "encoding of {msg:?}");
    assert_eq!(
        &M::decode(expected).unwrap(),
        msg,
        "decoding of {expected:02x?}"
    );
}

#[test]
fn response_header() {
    let h = ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision: 3,
        raft_term: 4,
    };
    check(&h, &[0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4]);
}

#[test]
fn range_request_every_field() {
    let r = RangeRequest {
        key: "a".into(),
        range_end: "b".into(),
        limit: 10,
        revision: 5,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 1, b'a', // key = 1
        0x12, 1, b'b', // range_end = 2
        0x18, 10,      // limit = 3
        0x20, 5,       // revision = 4
        0x28, 2,       // sort_order = 5 (DESCEND)
        0x30, 3,       // sort_target = 6 (MOD)
        0x38, 1,       // serializable = 7
        0x40, 1,       // keys_only = 8
        0x48, 1,       // count_only = 9
        0x50, 1,       // min_mod_revision = 10
        0x58, 2,       // max_mod_revision = 11
        0x60, 3,       // min_create_revision = 12
        0x68, 4,       // max_create_revision = 13
    ];
    check(&r, &expected);
}

#[test]
fn txn_request_with_compare_range_end_64() {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Value as i32,
            key: "k".into(),
            range_end: "z".into(),
            target_union: Some(compare::TargetUnion::Value("v".into())),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: "k".into(),
                value: "v".into(),
                lease: 7,
                prev_kv: true,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: "k".into(),
                    ..Default::default()
                },
            )),
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 14,                   // compare = 1
          0x08, 3,                  //   result = 1 (NOT_EQUAL)
          0x10, 3,                  //   target = 2 (VALUE)
          0x1a, 1, b'k',            //   key = 3
          0x3a, 1, b'v',            //   value = 7
          0x82, 0x04, 1, b'z',      //   range_end = 64
        0x12, 12,                   // success = 2
          0x12, 10,                 //   request_put = 2
            0x0a, 1, b'k',          //     key = 1
            0x12, 1, b'v',          //     value = 2
            0x18, 7,                //     lease = 3
            0x20, 1,                //     prev_kv = 4
        0x1a, 5,                    // failure = 3
          0x1a, 3,                  //   request_delete_range = 3
            0x0a, 1, b'k',          //     key = 1
    ];
    check(&txn, &expected);
}

#[test]
fn watch_create_request_every_field() {
    let w = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: "a".into(),
                range_end: "b".into(),
                start_revision: 9,
                progress_notify: true,
                filters: vec![watch_create_request::FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 5,
                fragment: true,
            },
        )),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 19,         // create_request = 1
          0x0a, 1, b'a',  //   key = 1
          0x12, 1, b'b',  //   range_end = 2
          0x18, 9,        //   start_revision = 3
          0x20, 1,        //   progress_notify = 4
          0x2a, 1, 1,     //   filters = 5, packed (NODELETE)
          0x30, 1,        //   prev_kv = 6
          0x38, 5,        //   watch_id = 7
          0x40, 1,        //   fragment = 8
    ];
    check(&w, &expected);
}

#[test]
fn watch_response_events_are_field_11() {
    let w = WatchResponse {
        watch_id: 1,
        created: true,
        events: vec![Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: "a".into(),
                mod_revision: 3,
                ..Default::default()
            }),
            prev_kv: None,
        }],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 1,                // watch_id = 2
        0x18, 1,                // created = 3
        0x5a, 9,                // events = 11
          0x08, 1,              //   type = 1 (DELETE)
          0x12, 5,              //   kv = 2
            0x0a, 1, b'a',      //     key = 1
            0x18, 3,            //     mod_revision = 3
    ];
    check(&w, &expected);
}

#[test]
fn status_response_late_fields() {
    let s = StatusResponse {
        version: "3.5.0".into(),
        leader: 7,
        raft_applied_index: 8,
        db_size_in_use: 9,
        is_learner: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x12, 5, b'3', b'.', b'5', b'.', b'0', // version = 2
        0x20, 7,                                // leader = 4
        0x38, 8,                                // raftAppliedIndex = 7
        0x48, 9,                                // dbSizeInUse = 9
        0x50, 1,                                // isLearner = 10
    ];
    check(&s, &expected);
}
