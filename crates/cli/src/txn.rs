//! The text form of a transaction, as etcdctl reads it:
//!
//! ```text
//! mod("key1") > "0"          <- compares, one per line
//!                            <- blank line
//! put key1 "overwrote-key1"  <- success ops
//!                            <- blank line
//! put key1 "created-key1"    <- failure ops
//! ```
//!
//! Compare targets: `value`/`val`, `mod`/`m`, `create`/`c`, `version`/`ver`, `lease` (hex);
//! operators `=`, `!=`, `<`, `>`. Ops: `get key [range_end] [--prefix] [--from-key]
//! [--limit=N] [--rev=N] [--keys-only] [--count-only]`, `put key value [--lease=ID]
//! [--prev-kv]`, `del key [range_end] [--prefix] [--from-key] [--prev-kv]`. Tokens may be
//! double-quoted, with `\"`, `\\` and `\n` escapes.

use quorum_api::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

use crate::error::{CliError, Result};
use crate::output::parse_hex_id;
use crate::range::{prefix_end, FROM_KEY_END};

/// Most compares or ops accepted in one section (etcd's default limit is 128).
pub const MAX_SECTION_LINES: usize = 10_000;

/// Which part of the transaction a line belongs to, for error messages.
#[derive(Debug, Clone, Copy)]
enum Section {
    Success,
    Failure,
}

/// Parses a whole transaction from its three blank-line-separated sections.
pub fn parse_txn(input: &str) -> Result<TxnRequest> {
    let mut sections: [Vec<&str>; 3] = Default::default();
    let mut idx = 0;
    for line in input.lines() {
        let line = line.trim();
        if line.is_empty() {
            idx += 1;
            if idx == 3 {
                break;
            }
            continue;
        }
        if sections[idx].len() >= MAX_SECTION_LINES {
            return Err(CliError::usage(format!(
                "too many lines in one txn section (at most {MAX_SECTION_LINES})"
            )));
        }
        sections[idx].push(line);
    }
    let [cmps, succ, fail] = sections;
    Ok(TxnRequest {
        compare: cmps
            .iter()
            .map(|l| parse_compare(l))
            .collect::<Result<_>>()?,
        success: succ
            .iter()
            .map(|l| parse_op(l, Section::Success))
            .collect::<Result<_>>()?,
        failure: fail
            .iter()
            .map(|l| parse_op(l, Section::Failure))
            .collect::<Result<_>>()?,
    })
}

/// Parses one compare line, e.g. `value("k") = "v"`.
pub fn parse_compare(line: &str) -> Result<Compare> {
    let bad = |why: &str| {
        CliError::usage(format!(
            "invalid compare {line:?} ({why}); expected e.g. mod(\"key\") > \"0\" or value(\"key\") = \"v\""
        ))
    };
    let open = line.find('(').ok_or_else(|| bad("no '('"))?;
    let close = line.rfind(')').ok_or_else(|| bad("no ')'"))?;
    if close < open {
        return Err(bad("')' before '('"));
    }
    let target_name = line[..open].trim();
    let key_toks = tokenize(&line[open + 1..close])?;
    let [key] = key_toks.as_slice() else {
        return Err(bad("expected one key inside the parentheses"));
    };
    let rest = tokenize(&line[close + 1..])?;
    let [op, value] = rest.as_slice() else {
        return Err(bad("expected an operator and a quoted value"));
    };
    let result = match op.as_str() {
        "=" | "==" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        "<" => compare::CompareResult::Less,
        ">" => compare::CompareResult::Greater,
        _ => return Err(bad("unknown operator; use =, !=, < or >")),
    };
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| bad("the value of this target must be an integer"))
    };
    let (target, union) = match target_name {
        "value" | "val" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(value.clone().into_bytes().into()),
        ),
        "mod" | "m" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(num(value)?),
        ),
        "create" | "c" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(num(value)?),
        ),
        "version" | "ver" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(num(value)?),
        ),
        "lease" => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(parse_hex_id(value)?),
        ),
        _ => {
            return Err(bad(
                "unknown target; use value, mod, create, version or lease",
            ))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.clone().into_bytes().into(),
        range_end: Default::default(),
        target_union: Some(union),
    })
}

/// Parses one op line of the success or failure section.
fn parse_op(line: &str, section: Section) -> Result<RequestOp> {
    let toks = tokenize(line)?;
    let bad = |why: String| {
        CliError::usage(format!(
            "invalid {section:?} op {line:?}: {why}; expected get/put/del, e.g. put key \"value\""
        ))
    };
    let (flags, pos): (Vec<&String>, Vec<&String>) = toks.iter().partition(|t| t.starts_with("--"));
    let Some((verb, args)) = pos.split_first() else {
        return Err(bad("empty".into()));
    };
    let has = |f: &str| flags.iter().any(|x| x.as_str() == f);
    let val_of = |f: &str| {
        flags
            .iter()
            .find_map(|x| x.strip_prefix(f).and_then(|r| r.strip_prefix('=')))
    };
    for f in &flags {
        let name = f.split('=').next().unwrap_or(f);
        let known = [
            "--prefix",
            "--from-key",
            "--prev-kv",
            "--lease",
            "--limit",
            "--rev",
            "--keys-only",
            "--count-only",
        ];
        if !known.contains(&name) {
            return Err(bad(format!("unknown flag {f}")));
        }
    }
    let range = |args: &[&String]| -> Result<(Vec<u8>, Vec<u8>)> {
        let key = args
            .first()
            .ok_or_else(|| bad("missing key".into()))?
            .as_bytes()
            .to_vec();
        if args.len() > 2 {
            return Err(bad("too many arguments".into()));
        }
        let end = if has("--prefix") {
            prefix_end(&key)
        } else if has("--from-key") {
            FROM_KEY_END.to_vec()
        } else {
            args.get(1)
                .map(|e| e.as_bytes().to_vec())
                .unwrap_or_default()
        };
        Ok((key, end))
    };
    let int_flag = |f: &str| -> Result<i64> {
        match val_of(f) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| bad(format!("{f} needs an integer"))),
        }
    };
    let request = match verb.as_str() {
        "get" => {
            let (key, range_end) = range(args)?;
            request_op::Request::RequestRange(RangeRequest {
                key: key.into(),
                range_end: range_end.into(),
                limit: int_flag("--limit")?,
                revision: int_flag("--rev")?,
                keys_only: has("--keys-only"),
                count_only: has("--count-only"),
                ..Default::default()
            })
        }
        "put" => {
            let [key, value] = args else {
                return Err(bad("put takes a key and a value".into()));
            };
            let lease = match val_of("--lease") {
                Some(v) => parse_hex_id(v)?,
                None => 0,
            };
            request_op::Request::RequestPut(PutRequest {
                key: key.as_bytes().to_vec().into(),
                value: value.as_bytes().to_vec().into(),
                lease,
                prev_kv: has("--prev-kv"),
                ..Default::default()
            })
        }
        "del" | "delete" => {
            let (key, range_end) = range(args)?;
            request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: range_end.into(),
                prev_kv: has("--prev-kv"),
            })
        }
        other => return Err(bad(format!("unknown operation {other:?}"))),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Splits a line into whitespace-separated tokens; double quotes group, with escapes.
pub fn tokenize(line: &str) -> Result<Vec<String>> {
    let mut toks = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if !quoted && c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some('n') => tok.push('\n'),
                    Some('t') => tok.push('\t'),
                    Some(e) => tok.push(e),
                    None => break,
                },
                _ => tok.push(c),
            }
        }
        if quoted {
            return Err(CliError::usage(format!("unterminated quote in {line:?}")));
        }
        toks.push(tok);
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_quotes() {
        assert_eq!(
            tokenize(r#"put k "a b \"c\"" --prev-kv"#).unwrap(),
            ["put", "k", "a b \"c\"", "--prev-kv"]
        );
        assert!(tokenize(r#"put "k"#).is_err());
    }

    #[test]
    fn etcdctl_example_parses() {
        let t = parse_txn(
            "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\n\nput key1 \"created-key1\"\nput key2 \"some extra key\"\n",
        )
        .unwrap();
        assert_eq!(t.compare.len(), 1);
        assert_eq!(t.compare[0].result, compare::CompareResult::Greater as i32);
        assert_eq!(t.compare[0].target, compare::CompareTarget::Mod as i32);
        assert_eq!(
            t.compare[0].target_union,
            Some(compare::TargetUnion::ModRevision(0))
        );
        assert_eq!(t.success.len(), 1);
        assert_eq!(t.failure.len(), 2);
        let Some(request_op::Request::RequestPut(p)) = &t.failure[1].request else {
            panic!("expected a put");
        };
        assert_eq!(&p.key[..], b"key2");
        assert_eq!(&p.value[..], b"some extra key");
    }

    #[test]
    fn value_compare_and_prefix_get() {
        let t = parse_txn("value(\"k\") != \"x y\"\n\nget p --prefix\n").unwrap();
        assert_eq!(
            t.compare[0].target_union,
            Some(compare::TargetUnion::Value("x y".into()))
        );
        let Some(request_op::Request::RequestRange(r)) = &t.success[0].request else {
            panic!("expected a get");
        };
        assert_eq!(&r.range_end[..], b"q");
        assert!(t.failure.is_empty());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "mod(\"k\") > \"x\"",
            "bogus(\"k\") = \"1\"",
            "mod \"k\" > 1",
            "value(\"k\") ~ \"v\"",
            ")(",
        ] {
            assert!(parse_compare(bad).is_err(), "{bad}");
        }
        assert!(parse_txn("\nput k\n").is_err());
        assert!(parse_txn("\nfrob k v\n").is_err());
        assert!(parse_txn("\nget k --bogus\n").is_err());
        assert!(parse_txn("\nget k --limit=x\n").is_err());
    }
}
