//! Key ranges as the etcd API expresses them.

/// The range end that means "every key >= key".
pub const FROM_KEY_END: &[u8] = b"\0";

/// The range end that covers every key starting with `prefix`: the prefix with its last
/// byte below 0xff incremented and what follows dropped; "\0" (all keys) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    FROM_KEY_END.to_vec()
}

/// The (key, range_end) of a command line: an explicit end, `--prefix`, `--from-key`, or the
/// single key. An empty key with `--prefix` or `--from-key` means every key.
pub fn key_range(key: &str, end: Option<&str>, prefix: bool, from_key: bool) -> (Vec<u8>, Vec<u8>) {
    let k = key.as_bytes().to_vec();
    if prefix {
        if k.is_empty() {
            return (FROM_KEY_END.to_vec(), FROM_KEY_END.to_vec());
        }
        let e = prefix_end(&k);
        return (k, e);
    }
    if from_key {
        if k.is_empty() {
            return (FROM_KEY_END.to_vec(), FROM_KEY_END.to_vec());
        }
        return (k, FROM_KEY_END.to_vec());
    }
    (k, end.map(|e| e.as_bytes().to_vec()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"aa"), b"ab");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn ranges() {
        assert_eq!(key_range("a", None, false, false), (b"a".to_vec(), vec![]));
        assert_eq!(
            key_range("a", Some("c"), false, false),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert_eq!(
            key_range("a", None, true, false),
            (b"a".to_vec(), b"b".to_vec())
        );
        assert_eq!(
            key_range("", None, true, false),
            (b"\0".to_vec(), b"\0".to_vec())
        );
        assert_eq!(
            key_range("a", None, false, true),
            (b"a".to_vec(), b"\0".to_vec())
        );
    }
}
