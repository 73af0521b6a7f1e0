//! The member registry: who is in the cluster (id, name, peer and client URLs, learner flag),
//! who was removed for good, and the checks etcd makes on membership changes.
//!
//! The registry is replicated state: every member applies the same log entries to it in the
//! same order (ConfChange entries whose context is a [`MemberChange`], and `member_attr_set`
//! requests a member proposes when it starts), so every member holds the same registry at the
//! same index. [`Registry::applied_index`] is the index of the last entry applied to it; an
//! entry at or below it is skipped, which makes replay after a crash (the registry is persisted
//! before the store records the entry as applied) and after adopting a snapshot's registry a
//! no-op.
//!
//! Invariants (asserted): `applied_index` never decreases; a removed id is never a member; at
//! most [`MAX_LEARNERS`] learners; no two members share a peer URL.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message as _;
use quorum_api::internal as ipb;
use quorum_raft::{ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, NodeId};

use crate::member::MemberInfo;

/// At most this many learners at a time (etcd's `maxLearners`).
pub const MAX_LEARNERS: usize = 1;
/// At most this many members (voters and learners); etcd has no hard limit, clusters above
/// seven voters are already unusual.
pub const MAX_MEMBERS: usize = 64;
/// At most this many peer or client URLs per member.
pub const MAX_URLS: usize = 16;
/// Longest accepted URL, in bytes.
pub const MAX_URL_LEN: usize = 512;
/// Longest accepted member name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// At most this many removed ids are remembered (the oldest are forgotten first); ids are
/// random 64-bit numbers, so forgetting very old ones is harmless.
pub const MAX_REMOVED: usize = 4096;
/// Refused ConfChange indexes remembered (replay only revisits the last few entries).
pub const MAX_REFUSED: usize = 64;
/// Largest encoded registry accepted from disk or a peer.
pub const MAX_ENCODED_BYTES: usize = 1 << 20;

/// Why a membership change is refused; the messages and (through [`crate::error::ServerError`])
/// the gRPC codes are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The id is already a member.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// Another member has one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// No such member (or it was removed).
    #[error("etcdserver: member not found")]
    NotFound,
    /// Promote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// A second learner.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A URL that is not `scheme://host:port`.
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
    /// More than [`MAX_MEMBERS`] members.
    #[error("etcdserver: too many members in cluster (at most {MAX_MEMBERS})")]
    TooManyMembers,
    /// A log entry or file that does not hold a valid membership record.
    #[error("malformed membership record: {0}")]
    Malformed(String),
}

/// What a [`MemberChange`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add a member (voter or learner).
    Add,
    /// Remove a member for good.
    Remove,
    /// Replace a member's peer URLs.
    Update,
    /// Promote a learner.
    Promote,
}

/// A membership change as it travels in a ConfChange's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// What happens.
    pub op: Op,
    /// The member concerned (for Remove and Promote only the id matters; for Update the id and
    /// the new peer URLs).
    pub member: MemberInfo,
    /// The proposer's request id (0: nobody waits).
    pub request_id: u64,
}

impl MemberChange {
    /// The Raft configuration change that carries this change. An update changes no Raft
    /// configuration: it carries the member's current role (checked by Raft when proposed, a
    /// no-op), and the core never applies it to Raft (see [`MemberChange::changes_raft`]).
    pub fn to_conf_change(&self) -> ConfChange {
        let id = self.member.id;
        let single = match self.op {
            Op::Add if self.member.is_learner => (ConfChangeType::AddLearner, id),
            Op::Add | Op::Promote => (ConfChangeType::AddNode, id),
            Op::Remove => (ConfChangeType::RemoveNode, id),
            Op::Update if self.member.is_learner => (ConfChangeType::AddLearner, id),
            Op::Update => (ConfChangeType::AddNode, id),
        };
        let ctx = ipb::ConfChangeContext {
            member: Some(member_to_proto(&self.member)),
            op: match self.op {
                Op::Add => ipb::MemberChangeOp::Add,
                Op::Remove => ipb::MemberChangeOp::Remove,
                Op::Update => ipb::MemberChangeOp::Update,
                Op::Promote => ipb::MemberChangeOp::Promote,
            } as i32,
            request_id: self.request_id,
        };
        ConfChange {
            transition: ConfChangeTransition::Auto,
            changes: vec![ConfChangeSingle {
                change_type: single.0,
                node_id: single.1,
            }],
            context: Bytes::from(ctx.encode_to_vec()),
        }
    }

    /// True if applying the change alters Raft's configuration (all but updates).
    pub fn changes_raft(&self) -> bool {
        self.op != Op::Update
    }

    /// Decodes the change a committed ConfChange carries, checking that the Raft change and the
    /// context agree.
    pub fn from_conf_change(cc: &ConfChange) -> Result<MemberChange, MembershipError> {
        let bad = |s: &str| MembershipError::Malformed(s.to_string());
        let ctx = ipb::ConfChangeContext::decode(cc.context.as_ref())
            .map_err(|e| MembershipError::Malformed(e.to_string()))?;
        let member = member_from_proto(ctx.member.ok_or_else(|| bad("no member"))?)?;
        let op = match ipb::MemberChangeOp::try_from(ctx.op) {
            Ok(ipb::MemberChangeOp::Add) => Op::Add,
            Ok(ipb::MemberChangeOp::Remove) => Op::Remove,
            Ok(ipb::MemberChangeOp::Update) => Op::Update,
            Ok(ipb::MemberChangeOp::Promote) => Op::Promote,
            Err(_) => return Err(bad("unknown operation")),
        };
        let change = MemberChange {
            op,
            member,
            request_id: ctx.request_id,
        };
        if cc.changes != change.to_conf_change().changes {
            return Err(bad("the Raft change does not match its context"));
        }
        Ok(change)
    }
}

/// The registry. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    members: BTreeMap<NodeId, MemberInfo>,
    removed: BTreeSet<NodeId>,
    applied_index: u64,
    initial_voters: Vec<NodeId>,
    refused: std::collections::VecDeque<u64>,
}

/// What applying an entry did to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The entry was at or below the registry's index: nothing changed.
    Skipped,
    /// The change took effect.
    Changed,
    /// The change was refused (deterministically, on every member); only the index moved.
    Refused(MembershipError),
}

impl Registry {
    /// The registry of a new cluster: its initial members, all voters.
    pub fn bootstrap(members: Vec<MemberInfo>) -> Registry {
        let initial_voters = members.iter().map(|m| m.id).collect();
        Registry {
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
            applied_index: 0,
            initial_voters,
            refused: Default::default(),
        }
    }

    /// Every member, by id.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members.values().cloned().collect()
    }

    /// One member.
    pub fn member(&self, id: NodeId) -> Option<&MemberInfo> {
        self.members.get(&id)
    }

    /// True if `id` was removed for good.
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// Index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The voters the cluster was bootstrapped with.
    pub fn initial_voters(&self) -> &[NodeId] {
        &self.initial_voters
    }

    /// The member whose peer URLs are exactly `urls` (in any order).
    pub fn find_by_peer_urls(&self, urls: &[String]) -> Option<&MemberInfo> {
        let want: BTreeSet<&str> = urls.iter().map(String::as_str).collect();
        self.members.values().find(|m| {
            let have: BTreeSet<&str> = m.peer_urls.iter().map(String::as_str).collect();
            have == want
        })
    }

    fn voters(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.values().filter(|m| !m.is_learner)
    }

    /// True when `id` is the cluster's only voter (it elects itself at once).
    pub fn is_sole_voter(&self, id: NodeId) -> bool {
        let mut voters = self.voters();
        voters.next().is_some_and(|m| m.id == id) && voters.next().is_none()
    }

    /// etcd's `IsReadyToAddVotingMember`: after adding a voter, the started voters (those
    /// that published their name) would still be a quorum; a one-member cluster may always
    /// grow to two.
    pub fn ready_to_add_voter(&self) -> bool {
        let started = self.voters().filter(|m| !m.name.is_empty()).count();
        let members = self.voters().count() + 1;
        if started == 1 && members == 2 {
            return true;
        }
        started > members / 2
    }

    /// etcd's `IsReadyToRemoveVotingMember`: the started voters other than `id` are a quorum
    /// of the voters other than `id`.
    pub fn ready_to_remove_voter(&self, id: NodeId) -> bool {
        let rest = self.voters().filter(|m| m.id != id);
        let (mut members, mut started) = (0usize, 0usize);
        for m in rest {
            members += 1;
            if !m.name.is_empty() {
                started += 1;
            }
        }
        started > members / 2
    }

    /// etcd's `IsReadyToPromoteMember`: counting the learner as a started voter, the started
    /// voters are still a quorum.
    pub fn ready_to_promote(&self) -> bool {
        let started = self.voters().filter(|m| !m.name.is_empty()).count() + 1;
        let members = self.voters().count() + 1;
        started > members / 2
    }

    /// Checks `change` against the registry as it is (etcd's `ValidateConfigurationChange`).
    pub fn validate(&self, change: &MemberChange) -> Result<(), MembershipError> {
        let id = change.member.id;
        if id == quorum_raft::NO_NODE {
            return Err(MembershipError::NotFound);
        }
        if self.removed.contains(&id) {
            return Err(MembershipError::NotFound);
        }
        match change.op {
            Op::Add => {
                if self.members.contains_key(&id) {
                    return Err(MembershipError::MemberExists);
                }
                validate_urls(&change.member.peer_urls)?;
                self.check_urls_free(&change.member.peer_urls, None)?;
                if change.member.is_learner
                    && self.members.values().filter(|m| m.is_learner).count() + 1 > MAX_LEARNERS
                {
                    return Err(MembershipError::TooManyLearners);
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(MembershipError::TooManyMembers);
                }
            }
            Op::Remove => {
                if !self.members.contains_key(&id) {
                    return Err(MembershipError::NotFound);
                }
            }
            Op::Update => {
                if !self.members.contains_key(&id) {
                    return Err(MembershipError::NotFound);
                }
                validate_urls(&change.member.peer_urls)?;
                self.check_urls_free(&change.member.peer_urls, Some(id))?;
            }
            Op::Promote => match self.members.get(&id) {
                None => return Err(MembershipError::NotFound),
                Some(m) if !m.is_learner => return Err(MembershipError::NotLearner),
                Some(_) => {}
            },
        }
        Ok(())
    }

    fn check_urls_free(
        &self,
        urls: &[String],
        except: Option<NodeId>,
    ) -> Result<(), MembershipError> {
        let taken: BTreeSet<&str> = self
            .members
            .values()
            .filter(|m| Some(m.id) != except)
            .flat_map(|m| m.peer_urls.iter().map(String::as_str))
            .collect();
        if urls.iter().any(|u| taken.contains(u.as_str())) {
            return Err(MembershipError::PeerUrlExists);
        }
        Ok(())
    }

    fn advance(&mut self, index: u64) -> bool {
        if index <= self.applied_index {
            return false;
        }
        self.applied_index = index;
        true
    }

    /// Applies the change committed at `index` (validated again: the registry may have moved
    /// since it was proposed).
    pub fn apply_change(&mut self, index: u64, change: &MemberChange) -> Applied {
        if !self.advance(index) {
            return Applied::Skipped;
        }
        if let Err(e) = self.validate(change) {
            return Applied::Refused(e);
        }
        let id = change.member.id;
        match change.op {
            Op::Add => {
                let m = MemberInfo {
                    id,
                    name: String::new(),
                    peer_urls: change.member.peer_urls.clone(),
                    client_urls: Vec::new(),
                    is_learner: change.member.is_learner,
                };
                self.members.insert(id, m);
            }
            Op::Remove => {
                self.members.remove(&id);
                self.removed.insert(id);
                while self.removed.len() > MAX_REMOVED {
                    self.removed.pop_first();
                }
            }
            Op::Update => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.peer_urls = change.member.peer_urls.clone();
                }
            }
            Op::Promote => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.is_learner = false;
                }
            }
        }
        self.check_invariants();
        Applied::Changed
    }

    /// Records the name and client URLs member `id` published, committed at `index`. Unknown
    /// or removed members are ignored (the entry may have been proposed just before a removal).
    pub fn apply_attributes(
        &mut self,
        index: u64,
        id: NodeId,
        name: &str,
        client_urls: &[String],
    ) -> Applied {
        if !self.advance(index) {
            return Applied::Skipped;
        }
        if name.len() > MAX_NAME_LEN || client_urls.len() > MAX_URLS {
            return Applied::Refused(MembershipError::Malformed("attributes too large".into()));
        }
        match self.members.get_mut(&id) {
            Some(m) => {
                m.name = name.to_string();
                m.client_urls = client_urls.to_vec();
                Applied::Changed
            }
            None => Applied::Refused(MembershipError::NotFound),
        }
    }

    /// Records that the ConfChange at `index` was refused, so that Raft skips it on replay.
    pub fn refuse(&mut self, index: u64) {
        self.advance(index);
        if self.refused.back().is_none_or(|&last| last < index) {
            self.refused.push_back(index);
        }
        while self.refused.len() > MAX_REFUSED {
            self.refused.pop_front();
        }
    }

    /// True if the ConfChange at `index` was refused.
    pub fn was_refused(&self, index: u64) -> bool {
        self.refused.contains(&index)
    }

    /// Moves the index without a change (an entry that carried nothing for the registry, but
    /// whose index must not be applied twice).
    pub fn skip_to(&mut self, index: u64) {
        self.advance(index);
    }

    fn check_invariants(&self) {
        debug_assert!(self.members.keys().all(|id| !self.removed.contains(id)));
        debug_assert!(self.members.values().filter(|m| m.is_learner).count() <= MAX_LEARNERS);
        debug_assert!({
            let mut seen = BTreeSet::new();
            self.members
                .values()
                .flat_map(|m| m.peer_urls.iter())
                .all(|u| seen.insert(u.as_str()))
        });
    }

    /// The registry as a protobuf record (in snapshots, in the join answer, on disk).
    pub fn to_proto(&self) -> ipb::Membership {
        ipb::Membership {
            members: self.members.values().map(member_to_proto).collect(),
            removed: self.removed.iter().copied().collect(),
            cluster_version: String::new(),
            applied_index: self.applied_index,
            initial_voters: self.initial_voters.clone(),
            refused_conf_changes: self.refused.iter().copied().collect(),
        }
    }

    /// Encodes [`Registry::to_proto`].
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_proto().encode_to_vec())
    }

    /// Decodes a record made by [`Registry::encode`]; errors on anything malformed.
    pub fn decode(data: &[u8]) -> Result<Registry, MembershipError> {
        if data.len() > MAX_ENCODED_BYTES {
            return Err(MembershipError::Malformed("record too large".into()));
        }
        let p =
            ipb::Membership::decode(data).map_err(|e| MembershipError::Malformed(e.to_string()))?;
        Registry::from_proto(p)
    }

    /// Builds a registry from its protobuf record, checking its invariants.
    pub fn from_proto(p: ipb::Membership) -> Result<Registry, MembershipError> {
        let bad = |s: &str| MembershipError::Malformed(s.to_string());
        if p.members.len() > MAX_MEMBERS
            || p.removed.len() > MAX_REMOVED
            || p.refused_conf_changes.len() > MAX_REFUSED
        {
            return Err(bad("too many members"));
        }
        let mut members = BTreeMap::new();
        for m in p.members {
            let m = member_from_proto(m)?;
            if m.id == quorum_raft::NO_NODE || members.insert(m.id, m).is_some() {
                return Err(bad("duplicate or zero member id"));
            }
        }
        let removed: BTreeSet<NodeId> = p.removed.into_iter().collect();
        if members.keys().any(|id| removed.contains(id)) {
            return Err(bad("a removed member is listed as a member"));
        }
        Ok(Registry {
            members,
            removed,
            applied_index: p.applied_index,
            initial_voters: p.initial_voters,
            refused: p.refused_conf_changes.into_iter().collect(),
        })
    }
}

/// A member as a protobuf record.
pub fn member_to_proto(m: &MemberInfo) -> ipb::Member {
    ipb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_urls: m.peer_urls.clone(),
        client_urls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// A member from its protobuf record, with its sizes checked.
pub fn member_from_proto(m: ipb::Member) -> Result<MemberInfo, MembershipError> {
    let too_long = |v: &[String]| v.len() > MAX_URLS || v.iter().any(|u| u.len() > MAX_URL_LEN);
    if m.name.len() > MAX_NAME_LEN || too_long(&m.peer_urls) || too_long(&m.client_urls) {
        return Err(MembershipError::Malformed("member record too large".into()));
    }
    Ok(MemberInfo {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    })
}

/// etcd's `types.NewURLs` rules for peer URLs: at least one; each `http(s)://host:port` with an
/// explicit port and no path, or `unix(s)://...`.
pub fn validate_urls(urls: &[String]) -> Result<(), MembershipError> {
    if urls.is_empty() || urls.len() > MAX_URLS {
        return Err(MembershipError::BadUrls);
    }
    for raw in urls {
        let s = raw.trim();
        if s.len() > MAX_URL_LEN {
            return Err(MembershipError::BadUrls);
        }
        let (scheme, rest) = s.split_once("://").ok_or(MembershipError::BadUrls)?;
        match scheme {
            "http" | "https" => {
                let parsed = url::Url::parse(s).map_err(|_| MembershipError::BadUrls)?;
                if parsed.host_str().is_none_or(str::is_empty)
                    || rest.contains(['/', '?', '#'])
                    || !has_explicit_port(rest)
                {
                    return Err(MembershipError::BadUrls);
                }
            }
            "unix" | "unixs" => {
                if rest.is_empty() {
                    return Err(MembershipError::BadUrls);
                }
            }
            _ => return Err(MembershipError::BadUrls),
        }
    }
    Ok(())
}

/// True if an authority (`host:port`, `[v6]:port`, maybe with userinfo) names a port.
fn has_explicit_port(authority: &str) -> bool {
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let port = match host_port.rfind(']') {
        Some(close) => host_port[close + 1..].strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: NodeId, name: &str, url: &str, learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![url.into()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn change(op: Op, member: MemberInfo) -> MemberChange {
        MemberChange {
            op,
            member,
            request_id: 7,
        }
    }

    fn three() -> Registry {
        Registry::bootstrap(vec![
            m(1, "a", "http://h:1", false),
            m(2, "b", "http://h:2", false),
            m(3, "c", "http://h:3", false),
        ])
    }

    #[test]
    fn add_promote_update_remove_in_order() {
        let mut r = three();
        let add = change(Op::Add, m(9, "", "http://h:9", true));
        assert_eq!(r.apply_change(5, &add), Applied::Changed);
        assert!(r.member(9).unwrap().is_learner);
        assert_eq!(r.member(9).unwrap().name, "");
        // A second learner is refused, deterministically.
        let add2 = change(Op::Add, m(10, "", "http://h:10", true));
        assert_eq!(
            r.apply_change(6, &add2),
            Applied::Refused(MembershipError::TooManyLearners)
        );
        assert_eq!(r.applied_index(), 6);
        assert_eq!(
            r.apply_attributes(7, 9, "d", &["http://c:9".into()]),
            Applied::Changed
        );
        assert_eq!(r.member(9).unwrap().name, "d");
        assert_eq!(
            r.apply_change(8, &change(Op::Promote, m(9, "", "", false))),
            Applied::Changed
        );
        assert!(!r.member(9).unwrap().is_learner);
        assert_eq!(
            r.apply_change(9, &change(Op::Promote, m(9, "", "", false))),
            Applied::Refused(MembershipError::NotLearner)
        );
        let upd = change(Op::Update, m(9, "", "http://h:99", false));
        assert_eq!(r.apply_change(10, &upd), Applied::Changed);
        assert_eq!(
            r.member(9).unwrap().peer_urls,
            vec!["http://h:99".to_string()]
        );
        assert_eq!(r.member(9).unwrap().name, "d", "update keeps the name");
        assert_eq!(
            r.apply_change(11, &change(Op::Remove, m(9, "", "", false))),
            Applied::Changed
        );
        assert!(r.member(9).is_none());
        assert!(r.is_removed(9));
        // A removed id never comes back, and is reported as not found.
        assert_eq!(
            r.apply_change(12, &change(Op::Add, m(9, "", "http://h:9", false))),
            Applied::Refused(MembershipError::NotFound)
        );
    }

    #[test]
    fn replayed_entries_are_skipped() {
        let mut r = three();
        let add = change(Op::Add, m(9, "", "http://h:9", true));
        assert_eq!(r.apply_change(5, &add), Applied::Changed);
        let snapshot = r.clone();
        assert_eq!(r.apply_change(5, &add), Applied::Skipped);
        assert_eq!(r, snapshot);
        r.refuse(6);
        assert!(r.was_refused(6) && !r.was_refused(5));
        let before = r.clone();
        assert_eq!(
            r.apply_change(4, &change(Op::Remove, m(1, "", "", false))),
            Applied::Skipped
        );
        assert_eq!(r.apply_attributes(3, 1, "zz", &[]), Applied::Skipped);
        assert_eq!(r, before);
    }

    #[test]
    fn validation_matches_etcd() {
        let r = three();
        let dup_url = change(Op::Add, m(9, "", "http://h:2", false));
        assert_eq!(r.validate(&dup_url), Err(MembershipError::PeerUrlExists));
        let dup_id = change(Op::Add, m(2, "", "http://h:9", false));
        assert_eq!(r.validate(&dup_id), Err(MembershipError::MemberExists));
        let missing = change(Op::Remove, m(42, "", "", false));
        assert_eq!(r.validate(&missing), Err(MembershipError::NotFound));
        let promote_voter = change(Op::Promote, m(1, "", "", false));
        assert_eq!(r.validate(&promote_voter), Err(MembershipError::NotLearner));
        // An update may keep the member's own URLs but not take another's.
        assert_eq!(
            r.validate(&change(Op::Update, m(1, "", "http://h:1", false))),
            Ok(())
        );
        assert_eq!(
            r.validate(&change(Op::Update, m(1, "", "http://h:3", false))),
            Err(MembershipError::PeerUrlExists)
        );
        assert_eq!(
            r.validate(&change(Op::Add, m(9, "", "ftp://h:9", false))),
            Err(MembershipError::BadUrls)
        );
    }

    #[test]
    fn urls_follow_etcd_rules() {
        let ok = |u: &str| validate_urls(&[u.to_string()]).is_ok();
        assert!(ok("http://127.0.0.1:2380"));
        assert!(ok("https://node-1.example:2380"));
        assert!(ok("http://[::1]:2380"));
        assert!(ok("unix://some/sock"));
        assert!(!ok("http://127.0.0.1"), "port required");
        assert!(!ok("http://127.0.0.1:2380/path"), "no path");
        assert!(!ok("127.0.0.1:2380"), "scheme required");
        assert!(!ok("ftp://127.0.0.1:2380"));
        assert!(!ok("http://:2380"));
        assert!(validate_urls(&[]).is_err());
    }

    #[test]
    fn started_quorum_checks() {
        let mut r = three();
        assert!(r.ready_to_add_voter());
        assert!(r.ready_to_remove_voter(3));
        // Two of three voters never started: adding a fourth voter would leave 1 of 4 started.
        let mut r2 = Registry::bootstrap(vec![
            m(1, "a", "http://h:1", false),
            m(2, "", "http://h:2", false),
            m(3, "", "http://h:3", false),
        ]);
        assert!(!r2.ready_to_add_voter());
        assert!(!r2.ready_to_remove_voter(1));
        assert!(!r2.ready_to_remove_voter(2));
        // A one-member cluster may always grow to two.
        let one = Registry::bootstrap(vec![m(1, "a", "http://h:1", false)]);
        assert!(one.ready_to_add_voter());
        // A learner does not count.
        r.apply_change(5, &change(Op::Add, m(9, "", "http://h:9", true)));
        assert!(r.ready_to_add_voter());
        assert!(r.ready_to_promote());
        r2.apply_change(5, &change(Op::Add, m(9, "", "http://h:9", true)));
        assert!(!r2.ready_to_promote());
    }

    #[test]
    fn conf_change_round_trip_and_garbage() {
        let c = change(Op::Add, m(9, "", "http://h:9", true));
        let cc = c.to_conf_change();
        assert_eq!(cc.changes[0].change_type, ConfChangeType::AddLearner);
        assert_eq!(MemberChange::from_conf_change(&cc).unwrap(), c);
        // An update names the member in its current role; the core never applies it to Raft.
        let mut learner = m(9, "", "http://h:9", true);
        let upd = change(Op::Update, learner.clone());
        assert_eq!(
            upd.to_conf_change().changes[0].change_type,
            ConfChangeType::AddLearner
        );
        assert_eq!(upd.to_conf_change().changes[0].node_id, 9);
        assert!(!upd.changes_raft() && c.changes_raft());
        learner.is_learner = false;
        let upd = change(Op::Update, learner);
        assert_eq!(
            upd.to_conf_change().changes[0].change_type,
            ConfChangeType::AddNode
        );
        assert_eq!(
            MemberChange::from_conf_change(&upd.to_conf_change()).unwrap(),
            upd
        );
        let mut forged = cc.clone();
        forged.changes[0].change_type = ConfChangeType::AddNode;
        assert!(MemberChange::from_conf_change(&forged).is_err());
        let garbage = ConfChange {
            context: Bytes::from_static(b"\xff\xff\xff"),
            ..cc
        };
        assert!(MemberChange::from_conf_change(&garbage).is_err());
    }

    #[test]
    fn registry_round_trips_and_rejects_garbage() {
        let mut r = three();
        r.apply_change(5, &change(Op::Remove, m(3, "", "", false)));
        r.refuse(6);
        let back = Registry::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.initial_voters(), &[1, 2, 3]);
        assert!(Registry::decode(b"\xff\x01garbage").is_err());
        let mut p = r.to_proto();
        p.removed.push(1);
        assert!(Registry::from_proto(p).is_err());
    }
}
