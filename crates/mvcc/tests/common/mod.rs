#![allow(dead_code)]

use quorum_mvcc::*;
use tempfile::TempDir;

pub struct Harness {
    pub dir: TempDir,
    pub store: Store,
    pub index: u64,
    pub opts: StoreOptions,
}

pub fn options() -> StoreOptions {
    StoreOptions {
        durable: false,
        cache_bytes: 4 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_options(options())
    }

    pub fn with_options(opts: StoreOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db"), opts.clone()).unwrap();
        Harness {
            dir,
            store,
            index: 0,
            opts,
        }
    }

    /// Closes the store durably and opens it again (the key index is rebuilt from disk).
    pub fn reopen(self) -> Harness {
        let Harness {
            dir,
            store,
            index,
            opts,
        } = self;
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path().join("db"), opts.clone()).unwrap();
        Harness {
            dir,
            store,
            index,
            opts,
        }
    }

    pub fn apply(&mut self, req: WriteRequest) -> Result<WriteResponse, MvccError> {
        self.index += 1;
        let mut out = self.store.apply(&[(self.index, req)]).unwrap();
        assert_eq!(out.len(), 1);
        out.pop().unwrap().expect("fresh index must be applied")
    }

    pub fn put(&mut self, k: &str, v: &str) -> PutResponse {
        match self.apply(WriteRequest::Put(put(k, v))).unwrap() {
            WriteResponse::Put(p) => p,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn put_lease(&mut self, k: &str, v: &str, lease: i64) -> Result<WriteResponse, MvccError> {
        self.apply(WriteRequest::Put(PutRequest { lease, ..put(k, v) }))
    }

    pub fn delete(&mut self, k: &str, end: &str) -> DeleteRangeResponse {
        match self
            .apply(WriteRequest::DeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                prev_kv: true,
            }))
            .unwrap()
        {
            WriteResponse::DeleteRange(d) => d,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn get(&self, k: &str) -> Option<KeyValue> {
        let r = self
            .store
            .range(&RangeRequest {
                key: k.into(),
                ..Default::default()
            })
            .unwrap();
        r.kvs.into_iter().next()
    }

    pub fn range(&self, k: &str, end: &str, rev: i64) -> Result<RangeResponse, MvccError> {
        self.store.range(&RangeRequest {
            key: k.into(),
            range_end: end.into(),
            revision: rev,
            ..Default::default()
        })
    }

    pub fn keys(&self, k: &str, end: &str, rev: i64) -> Vec<String> {
        self.range(k, end, rev)
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8(kv.key).unwrap())
            .collect()
    }
}

pub fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}
