//! `member add | remove | update | promote`, with etcdctl's output.

use quorum_api::etcdserverpb::{
    Member, MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    ResponseHeader,
};
use serde_json::json;

use crate::args::{Format, MemberCommand};
use crate::connect::Conn;
use crate::error::{CliError, Result};
use crate::output::{self, emit, header_json, hex_id};

/// Runs a membership change; `member list` is `maint::member_list`.
pub async fn change(conn: &Conn, fmt: Format, cmd: &MemberCommand) -> Result<()> {
    match cmd {
        MemberCommand::List => super::maint::member_list(conn, fmt).await,
        MemberCommand::Add {
            name,
            peer_urls,
            learner,
        } => {
            let r = conn
                .call(
                    "member add",
                    conn.cluster().member_add(MemberAddRequest {
                        peer_ur_ls: peer_urls.clone(),
                        is_learner: *learner,
                    }),
                )
                .await?;
            let new = r.member.clone().unwrap_or_default();
            match fmt {
                Format::Simple | Format::Table => {
                    emit(&added_text(name, &new, &r.members, r.header.as_ref()))
                }
                Format::Json => emit(&output::json_text(&json!({
                    "header": header_json(r.header.as_ref()),
                    "member": member_json(&new),
                    "members": r.members.iter().map(member_json).collect::<Vec<_>>(),
                }))),
            }
        }
        MemberCommand::Remove { id } => {
            let id = parse_member_id(id)?;
            let r = conn
                .call(
                    "member remove",
                    conn.cluster().member_remove(MemberRemoveRequest { id }),
                )
                .await?;
            done(fmt, "removed from", id, r.header.as_ref(), &r.members)
        }
        MemberCommand::Update { id, peer_urls } => {
            let id = parse_member_id(id)?;
            let r = conn
                .call(
                    "member update",
                    conn.cluster().member_update(MemberUpdateRequest {
                        id,
                        peer_ur_ls: peer_urls.clone(),
                    }),
                )
                .await?;
            done(fmt, "updated in", id, r.header.as_ref(), &r.members)
        }
        MemberCommand::Promote { id } => {
            let id = parse_member_id(id)?;
            let r = conn
                .call(
                    "member promote",
                    conn.cluster().member_promote(MemberPromoteRequest { id }),
                )
                .await?;
            done(fmt, "promoted in", id, r.header.as_ref(), &r.members)
        }
    }
}

/// Parses a member ID as `member list` prints it (hexadecimal).
pub fn parse_member_id(s: &str) -> Result<u64> {
    let t = s.trim().trim_start_matches("0x");
    u64::from_str_radix(t, 16)
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| {
            CliError::usage(format!(
                "bad member ID arg {s:?}: expected the hexadecimal ID `member list` prints"
            ))
        })
}

fn member_json(m: &Member) -> serde_json::Value {
    json!({
        "ID": m.id,
        "name": m.name,
        "peerURLs": m.peer_ur_ls,
        "clientURLs": m.client_ur_ls,
        "isLearner": m.is_learner,
    })
}

fn cluster_id(h: Option<&ResponseHeader>) -> u64 {
    h.map(|h| h.cluster_id).unwrap_or(0)
}

/// etcdctl's `member add` output: the new member, then the environment of its first start
/// (every member's `name=peerURL`, the new one under the name given).
pub fn added_text(
    name: &str,
    new: &Member,
    members: &[Member],
    header: Option<&ResponseHeader>,
) -> String {
    let mut conf = Vec::new();
    for m in members {
        let n = if m.id == new.id {
            name
        } else {
            m.name.as_str()
        };
        for u in &m.peer_ur_ls {
            conf.push(format!("{n}={u}"));
        }
    }
    format!(
        "Member {:>16} added to cluster {:>16}\n\nETCD_NAME=\"{name}\"\n\
         ETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\n\
         ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        hex_id(new.id),
        hex_id(cluster_id(header)),
        conf.join(","),
        new.peer_ur_ls.join(","),
    )
}

fn done(
    fmt: Format,
    what: &str,
    id: u64,
    header: Option<&ResponseHeader>,
    members: &[Member],
) -> Result<()> {
    match fmt {
        Format::Simple | Format::Table => emit(&format!(
            "Member {:>16} {what} cluster {:>16}\n",
            hex_id(id),
            hex_id(cluster_id(header))
        )),
        Format::Json => emit(&output::json_text(&json!({
            "header": header_json(header),
            "members": members.iter().map(member_json).collect::<Vec<_>>(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_parse_as_listed() {
        assert_eq!(
            parse_member_id("8e9e05c52164694d").unwrap(),
            0x8e9e05c52164694d
        );
        assert_eq!(parse_member_id("0x10").unwrap(), 16);
        assert!(parse_member_id("zz").is_err());
        assert!(parse_member_id("0").is_err());
        assert!(parse_member_id("").is_err());
    }

    #[test]
    fn add_output_is_etcdctls() {
        let m = |id, name: &str, url: &str| Member {
            id,
            name: name.into(),
            peer_ur_ls: vec![url.into()],
            ..Default::default()
        };
        let new = m(0xabc, "", "http://h:3");
        let members = vec![m(0x1, "a", "http://h:1"), new.clone()];
        let header = ResponseHeader {
            cluster_id: 0xfeed,
            ..Default::default()
        };
        let text = added_text("c", &new, &members, Some(&header));
        assert_eq!(
            text,
            "Member              abc added to cluster             feed\n\n\
             ETCD_NAME=\"c\"\n\
             ETCD_INITIAL_CLUSTER=\"a=http://h:1,c=http://h:3\"\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://h:3\"\n\
             ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }
}
