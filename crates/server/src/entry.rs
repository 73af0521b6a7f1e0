//! The process entry point of a member, shared by the `quorum` binary and the test binaries:
//! parses etcd-compatible flags, starts a member, and stops it gracefully on SIGTERM / SIGINT
//! (a leader hands leadership over first).

use crate::config::{rewrite_ignored_flags, Flags};
use clap::Parser;
use tracing::{info, warn};

/// Runs a member with the process arguments until a stop signal; returns the exit code.
pub fn main() -> i32 {
    let args = rewrite_ignored_flags(std::env::args().collect());
    let flags = Flags::parse_from(args);
    let ignored = flags.ignored.clone();
    let config = match flags.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quorum: {e}");
            return 2;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUORUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    for flag in ignored {
        warn!("ignoring etcd flag --{flag}: it tunes an etcd internal Quorum does not have");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quorum")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quorum: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let code = runtime.block_on(async move {
        let running = match crate::server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("quorum: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = wait_for_signal() => {
                info!("received a stop signal; stopping");
            }
            _ = running.removed() => {
                tokio::time::sleep(running.removal_grace()).await;
                eprintln!("quorum: the member has been permanently removed from the cluster");
            }
        }
        running.stop().await;
        0
    });
    code
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
