//! Periodic upkeep of a member that no request triggers: refreshing the store's space usage (the
//! quota check reads it) and, on the leader, clearing the NOSPACE alarm once compaction has
//! brought usage back under the quota — etcd needs an operator (defragment, then `alarm
//! disarm`) for that; Quorum does it by itself.

use std::time::Duration;

use quorum_mvcc as mvcc;
use tracing::{info, warn};

use crate::member::Member;

/// How often usage is refreshed ([`mvcc::Store::update_usage`]). Far from the quota that reads
/// the file size; near it, it walks the engine's page trees under the store's write lock, which
/// stalls applies for a time that grows with the store (bench/RESULTS.md saw a leader lost
/// while loading 1 M keys when that walk ran every second), so it runs every few seconds; the
/// quota check may see usage up to this old.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Runs until the process ends.
pub async fn run(member: Member) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = member.store().clone();
        let should_clear = tokio::task::spawn_blocking(move || {
            store.update_usage()?;
            store.nospace_should_clear()
        })
        .await;
        let status = member.status();
        if status.leader == 0 || status.leader != status.member_id {
            continue;
        }
        match should_clear {
            Ok(Ok(true)) => clear_nospace(&member).await,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => warn!("refreshing the store's usage failed: {e}"),
            Err(e) => warn!("usage refresh task failed: {e}"),
        }
    }
}

async fn clear_nospace(member: &Member) {
    let alarms = match member.store().alarms() {
        Ok(a) => a,
        Err(e) => {
            warn!("reading alarms failed: {e}");
            return;
        }
    };
    for a in alarms
        .into_iter()
        .filter(|a| a.alarm == mvcc::AlarmType::Nospace)
    {
        let req =
            crate::convert::write_to_internal(&mvcc::WriteRequest::Alarm(mvcc::AlarmRequest {
                action: mvcc::AlarmAction::Deactivate,
                member_id: a.member_id,
                alarm: mvcc::AlarmType::Nospace,
            }));
        match member.propose(req).await {
            Ok(_) => info!(
                "usage is back under the quota: NOSPACE alarm of member {:x} cleared",
                a.member_id
            ),
            Err(e) => warn!("clearing the NOSPACE alarm failed: {e}"),
        }
    }
}
