//! The auth state inside the store: applied from requests, persisted, carried by snapshots and
//! hashes, and the apply-time auth revision check.

mod common;

use common::*;
use quorum_mvcc::*;

fn auth(h: &mut Harness, r: AuthRequest) -> Result<AuthResponse, MvccError> {
    match h.apply(WriteRequest::Auth(r))? {
        WriteResponse::Auth(a) => Ok(a),
        other => panic!("unexpected {other:?}"),
    }
}

fn setup_root(h: &mut Harness) {
    auth(
        h,
        AuthRequest::UserAdd {
            name: "root".into(),
            password_hash: Some("$2b$hash".into()),
        },
    )
    .unwrap();
    auth(
        h,
        AuthRequest::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        },
    )
    .unwrap();
}

fn authorized(rev: u64, req: WriteRequest) -> WriteRequest {
    WriteRequest::Authorized(Box::new(AuthorizedRequest {
        auth_revision: rev,
        username: "root".into(),
        request: req,
    }))
}

#[test]
fn auth_changes_persist_across_reopen_and_bump_the_revision() {
    let mut h = Harness::new();
    assert_eq!(h.store.auth_state().revision(), 1);
    assert!(!h.store.auth_state().enabled());
    setup_root(&mut h);
    auth(&mut h, AuthRequest::RoleAdd { name: "r".into() }).unwrap();
    auth(
        &mut h,
        AuthRequest::RoleGrantPermission {
            name: "r".into(),
            perm: Permission {
                perm_type: PermType::Read,
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            },
        },
    )
    .unwrap();
    let resp = auth(&mut h, AuthRequest::Enable).unwrap();
    assert_eq!(resp.auth_revision, 6);
    // Auth changes consume no MVCC revision.
    assert_eq!(h.store.current_revision().unwrap(), 1);
    let before = h.store.auth_state();
    let path = h.dir.path().join("db");
    let Harness { dir, store, .. } = h;
    drop(store);
    let store = Store::open(&path, options()).unwrap();
    assert_eq!(*store.auth_state(), *before);
    assert!(store.auth_state().enabled());
    assert_eq!(store.auth_state().role("r").unwrap().permissions.len(), 1);
    drop(dir);
}

#[test]
fn a_request_checked_at_an_old_auth_revision_is_refused_at_apply() {
    let mut h = Harness::new();
    setup_root(&mut h);
    // Disabled: a stale stamp does not matter.
    let stale = h.store.auth_state().revision();
    auth(&mut h, AuthRequest::RoleAdd { name: "x".into() }).unwrap();
    h.apply(authorized(stale, WriteRequest::Put(put("k", "v"))))
        .unwrap();
    // Enabled: a request stamped before the latest change fails and leaves no trace.
    auth(&mut h, AuthRequest::Enable).unwrap();
    let rev_before = h.store.current_revision().unwrap();
    assert_eq!(
        h.apply(authorized(stale, WriteRequest::Put(put("k", "w")))),
        Err(MvccError::AuthOldRevision)
    );
    assert_eq!(h.store.current_revision().unwrap(), rev_before);
    assert_eq!(h.get("k").unwrap().value, b"v".to_vec());
    // Stamped with the current revision: applied.
    let now = h.store.auth_state().revision();
    match h
        .apply(authorized(now, WriteRequest::Put(put("k", "w"))))
        .unwrap()
    {
        WriteResponse::Put(p) => assert_eq!(p.header_revision, rev_before + 1),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn snapshots_and_hashes_carry_the_auth_state() {
    let mut h = Harness::new();
    setup_root(&mut h);
    h.put("k", "v");
    let hash_before = h.store.hash().unwrap();
    auth(&mut h, AuthRequest::Enable).unwrap();
    assert_ne!(h.store.hash().unwrap(), hash_before, "auth state is hashed");
    let mut image = Vec::new();
    h.store.snapshot_export(&mut image).unwrap();

    let mut other = Harness::new();
    assert!(!other.store.auth_state().enabled());
    other.store.snapshot_import(image.as_slice()).unwrap();
    assert_eq!(*other.store.auth_state(), *h.store.auth_state());
    assert_eq!(other.store.hash().unwrap(), h.store.hash().unwrap());
    other.index = h.index;
    // The imported state is live for apply too.
    assert_eq!(
        auth(
            &mut other,
            AuthRequest::UserDelete {
                name: "root".into()
            }
        ),
        Err(MvccError::InvalidAuthMgmt)
    );
}
