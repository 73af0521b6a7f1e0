//! The self-describing binary encoding of a [`ConfChange`] inside a log entry.
//!
//! Layout (integers little-endian): magic `b"QCC"`, version `1`, transition (u8), change
//! count (u32), then per change: type (u8), node id (u64); then context length (u32) and the
//! context bytes. Nothing may follow.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::errors::ConfChangeError;
use crate::types::{ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType};

const MAGIC: &[u8; 3] = b"QCC";
const VERSION: u8 = 1;
/// Upper bound on the changes in one [`ConfChange`].
pub const MAX_CHANGES: usize = 1024;
/// Upper bound on the context carried by a [`ConfChange`].
pub const MAX_CONTEXT_BYTES: usize = 1 << 20;

impl ConfChange {
    /// Encodes the change for an [`EntryKind::ConfChange`](crate::EntryKind::ConfChange) entry.
    pub fn encode(&self) -> Result<Bytes, ConfChangeError> {
        if self.changes.len() > MAX_CHANGES {
            return Err(ConfChangeError::TooManyChanges(self.changes.len()));
        }
        if self.context.len() > MAX_CONTEXT_BYTES {
            return Err(ConfChangeError::Malformed("context too large".into()));
        }
        let mut b = BytesMut::with_capacity(12 + 9 * self.changes.len() + self.context.len());
        b.put_slice(MAGIC);
        b.put_u8(VERSION);
        b.put_u8(match self.transition {
            ConfChangeTransition::Auto => 0,
            ConfChangeTransition::Implicit => 1,
            ConfChangeTransition::Explicit => 2,
        });
        b.put_u32_le(self.changes.len() as u32);
        for c in &self.changes {
            b.put_u8(match c.change_type {
                ConfChangeType::AddNode => 0,
                ConfChangeType::AddLearner => 1,
                ConfChangeType::RemoveNode => 2,
            });
            b.put_u64_le(c.node_id);
        }
        b.put_u32_le(self.context.len() as u32);
        b.put_slice(&self.context);
        Ok(b.freeze())
    }

    /// Decodes an entry payload produced by [`ConfChange::encode`]; errors on anything else.
    pub fn decode(data: &[u8]) -> Result<ConfChange, ConfChangeError> {
        let bad = |what: &str| ConfChangeError::Malformed(what.to_string());
        let mut buf = data;
        if buf.remaining() < 9 || &buf[..3] != MAGIC {
            return Err(bad("bad magic"));
        }
        buf.advance(3);
        if buf.get_u8() != VERSION {
            return Err(bad("unknown version"));
        }
        let transition = match buf.get_u8() {
            0 => ConfChangeTransition::Auto,
            1 => ConfChangeTransition::Implicit,
            2 => ConfChangeTransition::Explicit,
            _ => return Err(bad("unknown transition")),
        };
        let n = buf.get_u32_le() as usize;
        if n > MAX_CHANGES {
            return Err(ConfChangeError::TooManyChanges(n));
        }
        if buf.remaining() < n * 9 + 4 {
            return Err(bad("truncated changes"));
        }
        let mut changes = Vec::with_capacity(n);
        for _ in 0..n {
            let change_type = match buf.get_u8() {
                0 => ConfChangeType::AddNode,
                1 => ConfChangeType::AddLearner,
                2 => ConfChangeType::RemoveNode,
                _ => return Err(bad("unknown change type")),
            };
            let node_id = buf.get_u64_le();
            if node_id == crate::types::NO_NODE {
                return Err(bad("node id 0"));
            }
            changes.push(ConfChangeSingle {
                change_type,
                node_id,
            });
        }
        let len = buf.get_u32_le() as usize;
        if len > MAX_CONTEXT_BYTES || buf.remaining() != len {
            return Err(bad("bad context length"));
        }
        Ok(ConfChange {
            transition,
            changes,
            context: Bytes::copy_from_slice(buf),
        })
    }

    /// True if applying this change enters a joint configuration (rather than a simple change
    /// or leaving one); the second value says whether it is left automatically.
    pub fn enter_joint(&self) -> Option<bool> {
        if self.changes.is_empty() {
            return None;
        }
        match self.transition {
            ConfChangeTransition::Auto if self.changes.len() <= 1 => None,
            ConfChangeTransition::Auto | ConfChangeTransition::Implicit => Some(true),
            ConfChangeTransition::Explicit => Some(false),
        }
    }

    /// True if this change leaves a joint configuration.
    pub fn leave_joint(&self) -> bool {
        self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_cc() -> impl Strategy<Value = ConfChange> {
        let single = (0u8..3, 1u64..u64::MAX).prop_map(|(t, id)| ConfChangeSingle {
            change_type: match t {
                0 => ConfChangeType::AddNode,
                1 => ConfChangeType::AddLearner,
                _ => ConfChangeType::RemoveNode,
            },
            node_id: id,
        });
        (
            0u8..3,
            proptest::collection::vec(single, 0..5),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(t, changes, ctx)| ConfChange {
                transition: match t {
                    0 => ConfChangeTransition::Auto,
                    1 => ConfChangeTransition::Implicit,
                    _ => ConfChangeTransition::Explicit,
                },
                changes,
                context: Bytes::from(ctx),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(cc in arb_cc()) {
            let enc = cc.encode().unwrap();
            prop_assert_eq!(ConfChange::decode(&enc).unwrap(), cc);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConfChange::decode(&data);
        }

        #[test]
        fn truncation_is_detected(cc in arb_cc(), cut in 1usize..10) {
            let enc = cc.encode().unwrap();
            let cut = cut.min(enc.len());
            prop_assert!(ConfChange::decode(&enc[..enc.len() - cut]).is_err());
        }
    }
}
