//! Waiting for the user (Ctrl-C) or the system (SIGTERM) to stop a long-running command.

/// Resolves on SIGINT or SIGTERM. If a handler cannot be installed, waits on the other one
/// only (and forever if neither can: the process can still be killed).
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let int = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = term => {}
        _ = int => {}
    }
}
