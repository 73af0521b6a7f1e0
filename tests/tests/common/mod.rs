//! Helpers shared by the integration tests that drive clusters through `etcd-client`.

use std::time::{Duration, Instant};

use etcd_client::Client;
use quorum_tests::Cluster;

/// Index of the member that leads, as every live member agrees, waiting up to `timeout`.
pub async fn wait_leader(cluster: &Cluster, live: &[usize], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leaders = Vec::new();
        let mut ids = Vec::new();
        for &i in live {
            if let Ok(mut c) = Client::connect([cluster.endpoints()[i].clone()], None).await {
                if let Ok(s) = c.status().await {
                    leaders.push(s.leader());
                    ids.push((i, s.header().map(|h| h.member_id()).unwrap_or(0)));
                }
            }
        }
        if leaders.len() == live.len() && leaders.iter().all(|l| *l != 0 && *l == leaders[0]) {
            if let Some((i, _)) = ids.iter().find(|(_, id)| *id == leaders[0]) {
                return *i;
            }
        }
        if Instant::now() > deadline {
            panic!("no agreed leader among {live:?} within {timeout:?}: {leaders:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
