//! `sim`: run one seed, or sweep many seeds in parallel.
//!
//! ```text
//! sim --seed N [--trace] [--history F]   run one seed (with --trace: print every event; on
//!                                        failure, --history writes the client history to F
//!                                        in lincheck's JSON-lines format)
//! sim [--start S] [--count C] [--threads T] [--minutes M] [--max-failures F]
//!                                        sweep seeds S.. on T threads (default: all cores)
//! ```
//! With `--core`, members are the server's member core (`SimConfig::core_from_seed`).
//! A failure's replay command may add settings that differ from what the seed draws
//! (`--members N`, `--clients N`, `--faults a,b`, `--max-msg-bytes N`, `--workload W`,
//! `--fault-interval LO,HI`, `--phases FAULT,HEAL`, `--dup-proposals 0|1`; see
//! `quorum_sim::replay`) and, built with
//! `--features bug-injection`, `--plant NAME` to plant a known Raft bug again.
//! Exit status 0 when every seed passed, 1 when one failed, 2 on bad usage.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quorum_sim::{run, sweep, SimConfig};

const USAGE: &str = "usage: sim --seed N [--trace] [--history FILE] | sim [--start S] [--count C] [--threads T] [--minutes M] [--max-failures F] [--core]";

struct Args {
    seed: Option<u64>,
    trace: bool,
    history: Option<String>,
    start: u64,
    count: u64,
    threads: usize,
    minutes: Option<f64>,
    max_failures: usize,
    core: bool,
    overrides: Vec<(String, String)>,
    plant: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seed: None,
        trace: false,
        history: None,
        start: 0,
        count: u64::MAX,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        minutes: None,
        max_failures: 10,
        core: false,
        overrides: Vec::new(),
        plant: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let bad = |e: std::num::ParseIntError| e.to_string();
        match flag.as_str() {
            "--seed" => a.seed = Some(val()?.parse().map_err(bad)?),
            "--trace" => a.trace = true,
            "--core" => a.core = true,
            "--history" => a.history = Some(val()?),
            "--start" => a.start = val()?.parse().map_err(bad)?,
            "--count" => a.count = val()?.parse().map_err(bad)?,
            "--threads" => a.threads = val()?.parse().map_err(bad)?,
            "--max-failures" => a.max_failures = val()?.parse().map_err(bad)?,
            "--minutes" => {
                a.minutes = Some(
                    val()?
                        .parse()
                        .map_err(|e: std::num::ParseFloatError| e.to_string())?,
                )
            }
            "--plant" => a.plant = Some(val()?),
            "--members" | "--clients" | "--faults" | "--max-msg-bytes" | "--workload"
            | "--fault-interval" | "--phases" | "--dup-proposals" => {
                let v = val()?;
                a.overrides.push((flag[2..].to_string(), v));
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if a.seed.is_none() && a.count == u64::MAX && a.minutes.is_none() {
        a.count = 1000;
    }
    Ok(a)
}

/// A switch on a member's Raft config.
type Tweak = fn(&mut quorum_raft::Config);

/// The tweak planting bug `name`, and its static name.
#[cfg(feature = "bug-injection")]
fn plant(name: &str) -> Result<(Tweak, &'static str), String> {
    let known = quorum_sim::replay::PLANTS.iter().find(|p| **p == name);
    match (known, quorum_sim::replay::plant_tweak(name)) {
        (Some(n), Some(t)) => Ok((t, n)),
        _ => Err(format!(
            "unknown bug {name:?}; known: {:?}",
            quorum_sim::replay::PLANTS
        )),
    }
}

/// Without the feature no bug can be planted.
#[cfg(not(feature = "bug-injection"))]
fn plant(name: &str) -> Result<(Tweak, &'static str), String> {
    Err(format!(
        "planting {name:?} needs a build with --features bug-injection"
    ))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = args.seed {
        let mut cfg = if args.core {
            SimConfig::core_from_seed(seed)
        } else {
            SimConfig::from_seed(seed)
        };
        cfg.trace = args.trace;
        for (flag, value) in &args.overrides {
            if let Err(e) = quorum_sim::replay::apply_override(&mut cfg, flag, value) {
                eprintln!("sim: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        if let Some(name) = &args.plant {
            match plant(name) {
                Ok((tweak, name)) => {
                    cfg.tweak = Some(tweak);
                    cfg.plant = Some(name);
                }
                Err(e) => {
                    eprintln!("sim: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        println!("run: {cfg:?}");
        return match run(&cfg) {
            Ok(r) => {
                println!(
                    "seed {seed} passed: {} events, {} ops ({} ok, {} failed), {} entries applied, trace hash {:016x}{}",
                    r.events,
                    r.ops,
                    r.ok_ops,
                    r.failed_ops,
                    r.applied_entries,
                    r.trace_hash,
                    if r.lincheck_unknown { ", lincheck budget exhausted" } else { "" }
                );
                ExitCode::SUCCESS
            }
            Err(f) => {
                println!("{f}");
                if let (Some(path), Some(history)) = (&args.history, &f.history) {
                    let written = std::fs::File::create(path)
                        .map_err(quorum_lincheck::HistoryError::from)
                        .and_then(|file| history.write_json_lines(std::io::BufWriter::new(file)));
                    match written {
                        Ok(()) => println!("history written to {path}"),
                        Err(e) => eprintln!("sim: writing {path}: {e}"),
                    }
                }
                ExitCode::from(1)
            }
        };
    }
    let mut probe = SimConfig::from_seed(0);
    for (flag, value) in &args.overrides {
        if let Err(e) = quorum_sim::replay::apply_override(&mut probe, flag, value) {
            eprintln!("sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let deadline = args
        .minutes
        .map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
    let start = Instant::now();
    let last_print = AtomicU64::new(0);
    let progress = |done: u64, failures: usize| {
        let secs = start.elapsed().as_secs();
        if secs >= last_print.load(Ordering::Relaxed) + 10 {
            last_print.store(secs, Ordering::Relaxed);
            eprintln!(
                "[{secs:>5}s] {done} seeds, {failures} failures, {:.1} seeds/s",
                done as f64 / start.elapsed().as_secs_f64().max(1e-9)
            );
        }
    };
    println!(
        "sweeping seeds from {} on {} threads{}",
        args.start,
        args.threads,
        args.minutes
            .map(|m| format!(" for {m} minutes"))
            .unwrap_or_default()
    );
    let configure = |seed: u64| {
        let mut cfg = if args.core {
            SimConfig::core_from_seed(seed)
        } else {
            SimConfig::from_seed(seed)
        };
        for (flag, value) in &args.overrides {
            // Validated before the sweep starts.
            let _ = quorum_sim::replay::apply_override(&mut cfg, flag, value);
        }
        cfg
    };
    let report = sweep(
        args.start,
        args.count,
        args.threads,
        args.max_failures,
        deadline,
        &configure,
        &progress,
    );
    for f in &report.failures {
        println!("{f}\n");
    }
    println!(
        "{} seeds in {:.1}s: {:.2} seeds/s, {:.0} simulated ops/s, {} events, {} lincheck budget exhaustions, {} failures",
        report.seeds,
        report.elapsed.as_secs_f64(),
        report.seeds_per_sec(),
        report.ops_per_sec(),
        report.events,
        report.lincheck_unknown,
        report.failures.len()
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
