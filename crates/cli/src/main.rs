//! `quorumctl`: an etcdctl-like command-line client speaking the etcd v3 gRPC API, for Quorum
//! and etcd alike. Exit code 0 on success, 1 on any error (printed to stderr with what to do),
//! 2 on a command-line error (clap's).

#![warn(missing_docs)]

mod args;
mod cmd;
mod connect;
mod error;
mod output;
mod range;
mod signals;
mod txn;

use clap::Parser;

use args::{Cli, Command, SnapshotCommand};
use connect::Conn;
use error::Result;

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(run(cli));
    // Background tasks (lease keep-alives) must not delay the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    let fmt = g.write_out;
    match &cli.command {
        Command::Endpoint(c) => return cmd::maint::endpoint(g, fmt, c).await,
        Command::Defrag => return cmd::maint::defrag(g).await,
        Command::Playground(a) => return cmd::playground::playground(a).await,
        Command::Bench(a) => return cmd::bench::bench(g, a).await,
        _ => {}
    }
    let conn = Conn::first(g).await?;
    match &cli.command {
        Command::Get(a) => cmd::kv::get(&conn, fmt, a).await,
        Command::Put(a) => cmd::kv::put(&conn, fmt, a).await,
        Command::Del(a) => cmd::kv::del(&conn, fmt, a).await,
        Command::Txn(a) => cmd::kv::txn(&conn, fmt, a).await,
        Command::Compaction(a) => cmd::kv::compaction(&conn, fmt, a).await,
        Command::Watch(a) => cmd::watch::watch(&conn, fmt, a).await,
        Command::Lease(c) => cmd::lease::lease(&conn, fmt, c).await,
        Command::Lock(a) => cmd::sync::lock(&conn, fmt, a).await,
        Command::Elect(a) => cmd::sync::elect(&conn, fmt, a).await,
        Command::Member(args::MemberCommand::List) => cmd::maint::member_list(&conn, fmt).await,
        Command::Member(c) => cmd::member::change(&conn, fmt, c).await,
        Command::Snapshot(SnapshotCommand::Save { file }) => cmd::snapshot::save(&conn, file).await,
        Command::Alarm(c) => cmd::maint::alarm(&conn, fmt, c).await,
        Command::Endpoint(_) | Command::Defrag | Command::Playground(_) | Command::Bench(_) => {
            Ok(())
        }
    }
}
