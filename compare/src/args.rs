//! Command-line flags.

use crate::workload::WorkloadId;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: cargo run --release -p tidelog-compare -- [flags]

  --runs N          runs of every workload, each in a fresh directory (default 5)
  --quick           every count divided by 100: a smoke test, not a measurement
  --only W1,W2      run only these workloads (W1..W6; the machine limits always run)
  --dir PATH        where the fresh directories go (default: the system temp dir)
  --out PATH        where latest.json and the SVG charts go (default: compare/results)
  --read-budget S   seconds an engine may spend reading in W4 before it is cut off
                    (default 10, or 1 with --quick)
  -h, --help        this text";

/// The parsed flags.
#[derive(Debug, Clone)]
pub struct Args {
    pub runs: usize,
    pub quick: bool,
    pub only: Vec<WorkloadId>,
    pub dir: PathBuf,
    pub out: PathBuf,
    pub read_budget: Duration,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    Help,
}

impl Args {
    /// Parses the flags (without the program name).
    pub fn parse(mut flags: impl Iterator<Item = String>) -> Result<Parsed, String> {
        let mut runs = 5;
        let mut quick = false;
        let mut only = WorkloadId::ALL.to_vec();
        let mut dir = std::env::temp_dir();
        let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
        let mut read_budget = None;
        while let Some(flag) = flags.next() {
            let mut value = |name: &str| flags.next().ok_or_else(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--runs" => {
                    let v = value("--runs")?;
                    runs = v.parse().map_err(|_| format!("--runs: not a count: {v}"))?;
                    if runs == 0 {
                        return Err("--runs must be at least 1".into());
                    }
                }
                "--quick" => quick = true,
                "--only" => {
                    let v = value("--only")?;
                    only = v
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| WorkloadId::parse(s).ok_or_else(|| format!("--only: unknown workload {s}")))
                        .collect::<Result<_, _>>()?;
                    if only.is_empty() {
                        return Err("--only names no workload".into());
                    }
                }
                "--dir" => dir = PathBuf::from(value("--dir")?),
                "--out" => out = PathBuf::from(value("--out")?),
                "--read-budget" => {
                    let v = value("--read-budget")?;
                    let secs: f64 = v
                        .parse()
                        .map_err(|_| format!("--read-budget: not a number of seconds: {v}"))?;
                    if !(secs > 0.0 && secs.is_finite()) {
                        return Err("--read-budget must be a positive number of seconds".into());
                    }
                    read_budget = Some(Duration::from_secs_f64(secs));
                }
                "-h" | "--help" => return Ok(Parsed::Help),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        let read_budget = read_budget.unwrap_or(if quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        });
        Ok(Parsed::Run(Args {
            runs,
            quick,
            only,
            dir,
            out,
            read_budget,
        }))
    }

    pub fn selected(&self, w: WorkloadId) -> bool {
        self.only.contains(&w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Parsed, String> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Parsed::Run(a)) = parse("") else {
            panic!("defaults should parse")
        };
        assert_eq!((a.runs, a.quick, a.only.len()), (5, false, 6));
        assert_eq!(a.read_budget, Duration::from_secs(10));
        let Ok(Parsed::Run(a)) = parse("--runs 1 --quick --only W1,w4") else {
            panic!("flags should parse")
        };
        assert_eq!((a.runs, a.quick), (1, true));
        assert_eq!(a.only, vec![WorkloadId::W1, WorkloadId::W4]);
        assert_eq!(a.read_budget, Duration::from_secs(1));
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse("--runs 0").is_err());
        assert!(parse("--runs").is_err());
        assert!(parse("--only W9").is_err());
        assert!(parse("--frobnicate").is_err());
        assert!(matches!(parse("--help"), Ok(Parsed::Help)));
    }
}
