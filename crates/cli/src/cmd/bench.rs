//! `bench`: a load generator speaking the etcd v3 gRPC API, so it drives etcd and Quorum alike.
//! It runs one workload with a number of concurrent clients spread over a number of
//! connections, shows a progress bar on stderr, then prints throughput, latency percentiles
//! (hdrhistogram, microseconds) and errors by kind, as text or as one JSON object.

mod driver;
mod keys;
mod ops;
mod options;
mod report;
mod watch;

pub use options::BenchArgs;

use crate::args::{Format, Global};
use crate::error::Result;
use crate::output::emit;

/// `bench`.
pub async fn bench(g: &Global, a: &BenchArgs) -> Result<()> {
    let plan = a.plan()?;
    let (conns, endpoints) = driver::open_conns(g, &plan).await?;
    let mut report = match plan.workload {
        options::Workload::Watch => watch::run(&plan, &conns).await?,
        _ => driver::run(&plan, &conns).await?,
    };
    report.endpoints = endpoints;
    let text = if a.json || g.write_out == Format::Json {
        format!("{}\n", report.json())
    } else {
        report.text()
    };
    emit(&text)
}
