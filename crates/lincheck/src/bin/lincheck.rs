//! `lincheck [--max-steps N] [--timeout-ms N] [--initial KEY=VALUE]... FILE`
//!
//! Checks a JSON-lines history (see `quorum_lincheck::history`; `-` reads standard input) and
//! prints the verdict. Exit status: 0 linearizable, 1 not linearizable, 2 unknown (budget
//! exhausted), 3 bad usage or unreadable history.

use std::io::BufReader;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use quorum_lincheck::{Checker, History, Verdict};

const USAGE: &str =
    "usage: lincheck [--max-steps N] [--timeout-ms N] [--initial KEY=VALUE]... FILE|-";

fn parse_args(checker: &mut Checker) -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--max-steps" => {
                checker.budget.max_steps = value("--max-steps")?
                    .parse()
                    .map_err(|e| format!("--max-steps: {e}"))?;
            }
            "--timeout-ms" => {
                let ms: u64 = value("--timeout-ms")?
                    .parse()
                    .map_err(|e| format!("--timeout-ms: {e}"))?;
                checker.budget.deadline = Some(Instant::now() + Duration::from_millis(ms));
            }
            "--initial" => {
                let pair = value("--initial")?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or(format!("--initial expects KEY=VALUE, got {pair:?}"))?;
                checker.initial.insert(k.to_string(), v.to_string());
            }
            "-h" | "--help" => return Err(String::new()),
            _ if file.is_none() => file = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    file.ok_or_else(|| "missing FILE".to_string())
}

fn main() -> ExitCode {
    let mut checker = Checker::new();
    let file = match parse_args(&mut checker) {
        Ok(f) => f,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("lincheck: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(3);
        }
    };
    let history = if file == "-" {
        History::read_json_lines(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&file) {
            Ok(f) => History::read_json_lines(BufReader::new(f)),
            Err(e) => {
                eprintln!("lincheck: {file}: {e}");
                return ExitCode::from(3);
            }
        }
    };
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            eprintln!("lincheck: {file}: {e}");
            return ExitCode::from(3);
        }
    };
    match checker.check(&history) {
        Verdict::Linearizable => {
            println!("linearizable ({} operations)", history.len());
            ExitCode::SUCCESS
        }
        Verdict::NotLinearizable(witness) => {
            println!("{witness}");
            ExitCode::from(1)
        }
        Verdict::Unknown {
            undecided_partitions,
        } => {
            println!(
                "unknown: budget exhausted with {undecided_partitions} partition(s) undecided"
            );
            ExitCode::from(2)
        }
    }
}
