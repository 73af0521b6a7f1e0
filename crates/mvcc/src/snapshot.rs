//! Streamed snapshot export/import of the whole store.
//!
//! Format: `MAGIC`, then records `tag ‖ fields`, each variable field prefixed by its u32
//! big-endian length, then `TAG_END ‖ crc32c(everything before)`. Key-value records are
//! written in revision order (`key, main, sub, record`); the key index is rebuilt from them
//! after an import. Neither side buffers more than one record.

use crate::error::MvccError;
use crate::schema::*;
use crate::write::meta_get;
use redb::{Database, Durability, ReadTransaction, ReadableTable};
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"QMVCCSN1";
const TAG_META: u8 = 1;
const TAG_KV: u8 = 2;
const TAG_LEASE: u8 = 4;
const TAG_LEASE_KEY: u8 = 5;
const TAG_ALARM: u8 = 6;
const TAG_AUTH: u8 = 7;
const TAG_END: u8 = 0xFF;
/// Largest field accepted on import (keys and values are far smaller in practice).
pub const MAX_FIELD_BYTES: usize = 64 * 1024 * 1024;
/// Records per engine transaction during import.
const IMPORT_BATCH: usize = 10_000;

struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, b: &[u8]) -> Result<(), MvccError> {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.inner.write_all(b)?;
        Ok(())
    }
    fn u64(&mut self, v: u64) -> Result<(), MvccError> {
        self.put(&v.to_be_bytes())
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), MvccError> {
        let len = u32::try_from(b.len())
            .map_err(|_| MvccError::CorruptData("field too large to export".to_string()))?;
        self.put(&len.to_be_bytes())?;
        self.put(b)
    }
}

struct CrcReader<R: Read> {
    inner: R,
    crc: u32,
}

impl<R: Read> CrcReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), MvccError> {
        self.inner
            .read_exact(buf)
            .map_err(|e| MvccError::CorruptData(format!("snapshot truncated: {e}")))?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, MvccError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }
    fn u64(&mut self) -> Result<u64, MvccError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn i64(&mut self) -> Result<i64, MvccError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(i64::from_be_bytes(b))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, MvccError> {
        let mut l = [0u8; 4];
        self.exact(&mut l)?;
        let len = u32::from_be_bytes(l) as usize;
        if len > MAX_FIELD_BYTES {
            return Err(MvccError::CorruptData(format!(
                "snapshot field of {len} bytes exceeds the limit"
            )));
        }
        let mut v = vec![0u8; len];
        self.exact(&mut v)?;
        Ok(v)
    }
}

/// Writes the state seen by `txn` to `out`.
pub(crate) fn export(txn: &ReadTransaction, out: impl Write) -> Result<(), MvccError> {
    let mut w = CrcWriter { inner: out, crc: 0 };
    w.put(MAGIC)?;
    let meta = txn.open_table(META)?;
    for item in meta.iter()? {
        let (k, v) = item?;
        w.put(&[TAG_META])?;
        w.bytes(k.value().as_bytes())?;
        w.u64(v.value())?;
    }
    let history = txn.open_table(HISTORY)?;
    for item in history.iter()? {
        let (k, v) = item?;
        let (main, sub) = k.value();
        let (key, rec) = split_history(v.value())?;
        w.put(&[TAG_KV])?;
        w.bytes(key)?;
        w.u64(main)?;
        w.u64(sub)?;
        w.bytes(rec)?;
    }
    let lease = txn.open_table(LEASE)?;
    for item in lease.iter()? {
        let (k, v) = item?;
        let (ttl, remaining) = v.value();
        w.put(&[TAG_LEASE])?;
        w.put(&k.value().to_be_bytes())?;
        w.put(&ttl.to_be_bytes())?;
        w.put(&remaining.to_be_bytes())?;
    }
    let lease_keys = txn.open_table(LEASE_KEYS)?;
    for item in lease_keys.iter()? {
        let (k, _) = item?;
        let (id, key) = k.value();
        w.put(&[TAG_LEASE_KEY])?;
        w.put(&id.to_be_bytes())?;
        w.bytes(key)?;
    }
    let alarm = txn.open_table(ALARM)?;
    for item in alarm.iter()? {
        let (k, _) = item?;
        let (member, code) = k.value();
        w.put(&[TAG_ALARM])?;
        w.u64(member)?;
        w.put(&code.to_be_bytes())?;
    }
    let auth = txn.open_table(AUTH)?;
    for item in auth.iter()? {
        let (k, v) = item?;
        w.put(&[TAG_AUTH])?;
        w.bytes(k.value())?;
        w.bytes(v.value())?;
    }
    let crc = w.crc;
    w.put(&[TAG_END])?;
    w.inner.write_all(&crc.to_be_bytes())?;
    w.inner.flush()?;
    Ok(())
}

const META_NAMES: [&str; 7] = [
    META_CONSISTENT_INDEX,
    META_CURRENT_REV,
    META_COMPACT_REV,
    META_CURSOR_MAIN,
    META_CURSOR_SUB,
    META_COMPACT_DONE,
    META_IMPORTING,
];

/// Empties every table of `db` and sets `META_IMPORTING`, in one durable commit: the first
/// step of an import (here and `backup.rs`); the import's last commit clears the marker.
pub(crate) fn clear_for_import(db: &Database) -> Result<(), MvccError> {
    let txn = db.begin_write()?;
    txn.delete_table(HISTORY)?;
    txn.delete_table(META)?;
    txn.delete_table(LEASE)?;
    txn.delete_table(LEASE_KEYS)?;
    txn.delete_table(ALARM)?;
    txn.delete_table(AUTH)?;
    txn.open_table(META)?.insert(META_IMPORTING, 1)?;
    txn.commit()?;
    Ok(())
}

/// Replaces the content of `db` with the snapshot read from `input`. A crash in the middle
/// leaves `META_IMPORTING` set, which `Store::open` refuses.
pub(crate) fn import(db: &Database, input: impl Read) -> Result<(), MvccError> {
    let mut r = CrcReader {
        inner: input,
        crc: 0,
    };
    let mut magic = [0u8; 8];
    r.exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(MvccError::CorruptData("not a snapshot".to_string()));
    }
    clear_for_import(db)?;
    loop {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| MvccError::Storage(e.to_string()))?;
        let mut done = false;
        {
            let mut meta = txn.open_table(META)?;
            let mut history = txn.open_table(HISTORY)?;
            let mut buf = Vec::new();
            let mut lease = txn.open_table(LEASE)?;
            let mut lease_keys = txn.open_table(LEASE_KEYS)?;
            let mut alarm = txn.open_table(ALARM)?;
            let mut auth = txn.open_table(AUTH)?;
            for _ in 0..IMPORT_BATCH {
                let crc_before = r.crc;
                match r.u8()? {
                    TAG_META => {
                        let name = r.bytes()?;
                        let v = r.u64()?;
                        let name = META_NAMES
                            .iter()
                            .find(|n| n.as_bytes() == name.as_slice())
                            .ok_or_else(|| {
                                MvccError::CorruptData("unknown meta entry".to_string())
                            })?;
                        if *name != META_IMPORTING {
                            meta.insert(*name, v)?;
                        }
                    }
                    TAG_KV => {
                        let key = r.bytes()?;
                        let main = r.u64()?;
                        let sub = r.u64()?;
                        let val = r.bytes()?;
                        Record::decode(&val, true)?;
                        encode_history_key(&key, &mut buf)?;
                        buf.extend_from_slice(&val);
                        history.insert((main, sub), buf.as_slice())?;
                    }
                    TAG_LEASE => {
                        let id = r.i64()?;
                        let ttl = r.i64()?;
                        let remaining = r.i64()?;
                        lease.insert(id, (ttl, remaining))?;
                    }
                    TAG_LEASE_KEY => {
                        let id = r.i64()?;
                        let key = r.bytes()?;
                        lease_keys.insert((id, key.as_slice()), ())?;
                    }
                    TAG_ALARM => {
                        let member = r.u64()?;
                        let mut c = [0u8; 4];
                        r.exact(&mut c)?;
                        alarm.insert((member, i32::from_be_bytes(c)), ())?;
                    }
                    TAG_AUTH => {
                        let key = r.bytes()?;
                        let val = r.bytes()?;
                        crate::auth::check_record(&key, &val)?;
                        auth.insert(key.as_slice(), val.as_slice())?;
                    }
                    TAG_END => {
                        let mut c = [0u8; 4];
                        r.inner
                            .read_exact(&mut c)
                            .map_err(|e| MvccError::CorruptData(format!("no checksum: {e}")))?;
                        if u32::from_be_bytes(c) != crc_before {
                            return Err(MvccError::CorruptData(
                                "snapshot checksum mismatch".to_string(),
                            ));
                        }
                        if meta_get(&meta, META_CURRENT_REV)?.is_none() {
                            return Err(MvccError::CorruptData(
                                "snapshot without revision".to_string(),
                            ));
                        }
                        meta.remove(META_IMPORTING)?;
                        done = true;
                        break;
                    }
                    t => return Err(MvccError::CorruptData(format!("unknown record tag {t}"))),
                }
            }
        }
        if done {
            txn.set_durability(Durability::Immediate)
                .map_err(|e| MvccError::Storage(e.to_string()))?;
            txn.commit()?;
            return Ok(());
        }
        txn.commit()?;
    }
}
