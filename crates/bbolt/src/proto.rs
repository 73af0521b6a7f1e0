//! A minimal protobuf (proto3) wire codec: just what etcd's backend values need (varints and
//! length-delimited fields), hand-written so the crate needs no protobuf toolchain.
//!
//! Encoding follows gogoproto's `Marshal`: fields in number order, zero values omitted. Decoding
//! is for untrusted input: every malformed byte is an [`Error::Corrupt`], never a panic;
//! unknown fields are skipped, as protobuf requires.

use crate::error::{corrupt, Result};

/// Appends `v` as a base-128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`, advancing it.
pub(crate) fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&byte) = b.get(*pos) else {
            return Err(corrupt!("protobuf: truncated varint"));
        };
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(corrupt!("protobuf: varint longer than 10 bytes"))
}

/// Appends varint field `field` unless `v` is 0 (proto3 omits zero values).
pub(crate) fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_varint(out, u64::from(field) << 3);
        put_varint(out, v);
    }
}

/// Appends length-delimited field `field` unless `b` is empty.
pub(crate) fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        message_field(out, field, b);
    }
}

/// Appends length-delimited field `field` even when `b` is empty (a present sub-message).
pub(crate) fn message_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// One decoded field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire types 1 and 5 (no field of etcd's messages used here has them).
    Fixed,
}

/// Calls `f(field, value)` for every field of the message `b`, in order; `what` names the
/// message in errors.
pub(crate) fn for_each_field<'a>(
    b: &'a [u8],
    what: &str,
    mut f: impl FnMut(u64, Value<'a>) -> Result<()>,
) -> Result<()> {
    let mut pos = 0;
    while pos < b.len() {
        let tag = get_varint(b, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(corrupt!("protobuf {what}: field number 0"));
        }
        let value = match wire {
            0 => Value::Varint(get_varint(b, &mut pos)?),
            2 => {
                let len = get_varint(b, &mut pos)?;
                let end = (pos as u64)
                    .checked_add(len)
                    .filter(|&e| e <= b.len() as u64)
                    .ok_or_else(|| corrupt!("protobuf {what}: field {field} runs past the end"))?
                    as usize;
                let v = &b[pos..end];
                pos = end;
                Value::Bytes(v)
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if pos + n > b.len() {
                    return Err(corrupt!("protobuf {what}: truncated fixed-width field"));
                }
                pos += n;
                Value::Fixed
            }
            _ => return Err(corrupt!("protobuf {what}: unsupported wire type {wire}")),
        };
        f(field, value)?;
    }
    Ok(())
}

impl<'a> Value<'a> {
    /// The varint value of a known field, or an error naming it.
    pub(crate) fn varint(self, what: &str, field: u64) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(corrupt!("protobuf {what}: field {field} is not a varint")),
        }
    }

    /// The bytes of a known length-delimited field, or an error naming it.
    pub(crate) fn bytes(self, what: &str, field: u64) -> Result<&'a [u8]> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(corrupt!(
                "protobuf {what}: field {field} is not length-delimited"
            )),
        }
    }
}
