//! `tidelog`: inspect and use a tidelog log directory from the shell.
//!
//! `dump` and `verify` read segment files directly and take no lock, so they
//! work beside a running service; the other commands open the log and so
//! need it closed elsewhere. Errors are one line on stderr and exit status 2;
//! `verify` exits 1 when it finds damage.

mod inspect;

use clap::{Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tidelog::{Log, LogConfig, Offset, Record, TopicConfig};

#[derive(Parser)]
#[command(name = "tidelog", version, about = "Inspect and use a tidelog log directory")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the topics of a log directory.
    Topics {
        /// The log directory.
        dir: PathBuf,
    },
    /// Show a topic's config and its partitions' offsets, segments and bytes.
    Describe {
        /// The log directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
    },
    /// Print the batches of a segment file (`.log`), like Kafka's dump-log tool.
    Dump {
        /// The `.log` file.
        path: PathBuf,
        /// Print every record too.
        #[arg(long)]
        records: bool,
        /// One JSON object per batch (and per record), one per line.
        #[arg(long)]
        json: bool,
    },
    /// Check every batch (structure, CRC-32C), offset order and index entry of
    /// a log directory, without opening it; exit status 1 if anything is wrong.
    Verify {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print the last records of a topic; `-f` keeps printing new ones.
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// Only this partition.
        #[arg(short, long)]
        partition: Option<u32>,
        /// Records per partition.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Keep printing records as they arrive.
        #[arg(short, long)]
        follow: bool,
    },
    /// Append lines from stdin as records: `key<TAB>value`, or a value alone.
    Produce {
        /// The log directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// Create the topic (one partition) if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Run retention and compaction now (`--dry-run`: only say what
    /// retention would delete).
    Maintain {
        /// The log directory.
        dir: PathBuf,
        /// Delete nothing: print, per partition, the segments and bytes
        /// retention would delete.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rebuild every sealed segment's `.index` and `.timeindex` from its log
    /// (run while no process uses the log).
    Reindex {
        /// The log directory.
        dir: PathBuf,
    },
    /// List the consumer groups with committed offsets.
    Groups {
        /// The log directory.
        dir: PathBuf,
    },
    /// Committed offset, end offset and lag of each partition of a group.
    Lag {
        /// The log directory.
        dir: PathBuf,
        /// The group.
        group: String,
    },
}

/// A failure: printed as one line, exit status 2.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("tidelog: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Topics { dir } => {
            let log = open(&dir)?;
            for name in log.topics() {
                let info = log.describe(&name)?;
                writeln!(out, "{name}\t{} partitions", info.partitions.len())?;
            }
            log.close()?;
        }
        Command::Describe { dir, topic } => {
            let log = open(&dir)?;
            let info = log.describe(&topic)?;
            writeln!(out, "topic {}\nconfig {:?}", info.name, info.config)?;
            writeln!(out, "partition\tstart\tend\tsegments\tbytes")?;
            for p in &info.partitions {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    p.partition, p.start_offset, p.end_offset, p.segments, p.size_bytes
                )?;
            }
            log.close()?;
        }
        Command::Dump { path, records, json } => {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let damaged = inspect::dump(&bytes, records, json, &mut out)?;
            if damaged {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Verify { dir } => {
            let report = inspect::verify(&dir)?;
            for problem in &report.problems {
                writeln!(out, "{problem}")?;
            }
            writeln!(
                out,
                "{} partitions, {} segments, {} batches, {} records: {}",
                report.partitions,
                report.segments,
                report.batches,
                report.records,
                if report.problems.is_empty() {
                    "clean".to_owned()
                } else {
                    format!("{} problems", report.problems.len())
                }
            )?;
            if !report.problems.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Tail {
            dir,
            topic,
            partition,
            lines,
            follow,
        } => {
            let log = open(&dir)?;
            let info = log.describe(&topic)?;
            let partitions: Vec<u32> = match partition {
                Some(p) => vec![p],
                None => info.partitions.iter().map(|p| p.partition).collect(),
            };
            let mut positions = Vec::new();
            for p in partitions {
                let Some(pi) = info.partitions.iter().find(|i| i.partition == p) else {
                    return Err(Failure(format!("topic {topic:?} has no partition {p}")));
                };
                let from = pi.end_offset.saturating_sub(lines).max(pi.start_offset);
                let mut next = from;
                while next < pi.end_offset {
                    let got = log.fetch(&topic, p, next, 1000)?;
                    let Some(last) = got.last() else { break };
                    next = last.offset() + 1;
                    for r in &got {
                        print_record(&mut out, r)?;
                    }
                }
                positions.push((p, next));
            }
            if follow {
                let mut consumer = log.consumer("tidelog-cli-tail");
                let assigned: Vec<(&str, u32)> =
                    positions.iter().map(|(p, _)| (topic.as_str(), *p)).collect();
                consumer.assign(&assigned)?;
                for (p, next) in &positions {
                    consumer.seek(&topic, *p, Offset::At(*next))?;
                }
                loop {
                    for r in &consumer.poll(Duration::from_millis(500))? {
                        print_record(&mut out, r)?;
                    }
                    out.flush()?;
                }
            }
            log.close()?;
        }
        Command::Produce { dir, topic, create } => {
            let log = open(&dir)?;
            if create && !log.topics().contains(&topic) {
                log.create_topic(&topic, TopicConfig::default())?;
            }
            let producer = log.producer();
            let mut batch = Vec::new();
            let mut count = 0u64;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let record = match line.split_once('\t') {
                    Some((key, value)) => Record::new(value.to_owned()).with_key(key.to_owned()),
                    None => Record::new(line),
                };
                batch.push(record);
                if batch.len() == 1000 {
                    count += batch.len() as u64;
                    producer.send_batch(&topic, std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                count += batch.len() as u64;
                producer.send_batch(&topic, batch)?;
            }
            log.close()?;
            if std::io::stderr().is_terminal() {
                eprintln!("produced {count} records to {topic}");
            }
        }
        Command::Maintain { dir, dry_run } => {
            let log = open(&dir)?;
            if dry_run {
                writeln!(out, "topic\tpartition\tsegments\tbytes")?;
                for p in log.retention_preview()? {
                    writeln!(out, "{}\t{}\t{}\t{}", p.topic, p.partition, p.segments, p.bytes)?;
                }
            } else {
                let r = log.run_maintenance()?;
                writeln!(
                    out,
                    "segments deleted {}, compacted {}, rolled {}; {} bytes reclaimed; {} partitions failed",
                    r.segments_deleted,
                    r.segments_compacted,
                    r.segments_rolled,
                    r.bytes_reclaimed,
                    r.partitions_failed
                )?;
            }
            log.close()?;
        }
        Command::Reindex { dir } => {
            // Hold the lock while checking the log can be opened, then
            // remove the sealed segments' indexes: the next open rebuilds
            // every missing index from its log.
            let log = open(&dir)?;
            log.close()?;
            drop(log);
            let removed = inspect::remove_sealed_indexes(&dir)?;
            let log = open(&dir)?;
            log.close()?;
            writeln!(out, "rebuilt {removed} index files")?;
        }
        Command::Groups { dir } => {
            let log = open(&dir)?;
            for g in log.groups()? {
                writeln!(out, "{g}")?;
            }
            log.close()?;
        }
        Command::Lag { dir, group } => {
            let log = open(&dir)?;
            writeln!(out, "topic\tpartition\tcommitted\tend\tlag")?;
            for l in log.group_lag(&group)? {
                let committed = l.committed.map_or_else(|| "-".to_owned(), |c| c.to_string());
                writeln!(
                    out,
                    "{}\t{}\t{committed}\t{}\t{}",
                    l.topic, l.partition, l.end_offset, l.lag
                )?;
            }
            log.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing log directory (never creating one by mistake).
fn open(dir: &Path) -> Result<Log, Failure> {
    if !dir.join("tidelog.topics").exists() && !dir.join("LOCK").exists() {
        return Err(Failure(format!("{}: not a tidelog log directory", dir.display())));
    }
    Log::open(dir, LogConfig::default().maintenance_interval(None)).map_err(|e| match e {
        tidelog::Error::Locked { .. } => Failure(format!(
            "{}: the log is open in another process (dump and verify work without opening it)",
            dir.display()
        )),
        other => Failure(other.to_string()),
    })
}

fn print_record(out: &mut impl Write, r: &tidelog::ConsumedRecord) -> std::io::Result<()> {
    let key = r.key().map_or_else(|| "-".to_owned(), |k| inspect::text(k));
    let value = r
        .value()
        .map_or_else(|| "(tombstone)".to_owned(), |v| inspect::text(v));
    writeln!(
        out,
        "{}-{}@{}\t{key}\t{value}",
        r.topic(),
        r.partition(),
        r.offset()
    )
}
