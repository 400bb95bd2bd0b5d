//! Runs the workloads on every engine and the machine limits, `--runs` times
//! each, collects the samples in a [`Report`], and writes the outputs.

use crate::args::Args;
use crate::chart;
use crate::engines::commitlog::Commitlog02;
use crate::engines::kafko::Kafko02;
use crate::engines::tidelog::Tidelog;
use crate::engines::{Engine, Outcome, ReadBack};
use crate::limits;
use crate::report::{Metric, Report, RowKind, Unit};
use crate::stats::percentile;
use crate::workload::{Dataset, Sizes, WorkloadId, KEY_BYTES};
use serde_json::json;
use std::path::Path;
use tempfile::TempDir;

/// Who the machine-limit rows are.
const MACHINE: &str = "machine";

/// The machine limits' samples that also appear as rows of workload metrics.
#[derive(Debug, Default)]
struct LimitSamples {
    write_mb_s: Vec<f64>,
    group_commit_per_s: Vec<f64>,
}

/// The engines, the sizes, and what has been measured so far.
pub struct Bench {
    args: Args,
    sizes: Sizes,
    engines: Vec<Box<dyn Engine>>,
    report: Report,
    limits: LimitSamples,
}

/// `n` with thousands separators.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Bench {
    pub fn new(args: Args, sizes: Sizes) -> Bench {
        Bench {
            args,
            sizes,
            engines: vec![Box::new(Tidelog), Box::new(Kafko02::new()), Box::new(Commitlog02)],
            report: Report::default(),
            limits: LimitSamples::default(),
        }
    }

    /// Whether `--only` selected `w`.
    pub fn selected(&self, w: WorkloadId) -> bool {
        self.args.selected(w)
    }

    fn fresh_dir(&self) -> TempDir {
        tempfile::Builder::new()
            .prefix("tidelog-compare-")
            .tempdir_in(&self.args.dir)
            .expect("create a fresh directory under --dir")
    }

    fn progress(&self, what: &str, run: usize, who: &str, result: &str) {
        eprintln!("[{what} run {}/{}] {who}: {result}", run + 1, self.args.runs);
    }

    /// Measures the machine's limits once per run.
    pub fn limits(&mut self) {
        let s = self.sizes;
        let desc = "the machine's limits, measured with plain system calls in this run";
        let write = self.report.define(Metric::new(
            "limits",
            desc,
            &format!(
                "page-cache write of {} MiB in 1 MiB calls (best of 3 passes), MB/s",
                s.limit_write_mib
            ),
            Unit::MegabytesPerSecond,
        ));
        let fsync_p50 = self.report.define(
            Metric::new("limits", desc, "4 KiB append + fdatasync, p50 µs", Unit::Micros).lower_is_better(),
        );
        let fsync_p99 = self.report.define(
            Metric::new("limits", desc, "4 KiB append + fdatasync, p99 µs", Unit::Micros).lower_is_better(),
        );
        let group = self.report.define(Metric::new(
            "limits",
            desc,
            &format!(
                "group-committed fdatasync appends of {} B, {} threads, appends/s",
                s.small_value, s.durable_threads_tidelog
            ),
            Unit::PerSecond,
        ));
        let memcpy = self.report.define(Metric::new(
            "limits",
            desc,
            &format!("memcpy of {} MiB buffers, GB/s", s.limit_memcpy_bytes >> 20),
            Unit::GigabytesPerSecond,
        ));
        for run in 0..self.args.runs {
            let dir = self.fresh_dir();
            let mb_s = limits::write_bandwidth(dir.path(), s.limit_write_mib);
            let (p50, p99) = limits::fdatasync_latency(dir.path(), s.limit_fsync_appends);
            let per_s = limits::group_commit(
                dir.path(),
                s.durable_threads_tidelog,
                s.durable_per_thread,
                s.small_value,
            );
            let gb_s = limits::memcpy_bandwidth(s.limit_memcpy_bytes);
            self.progress(
                "limits",
                run,
                MACHINE,
                &format!(
                    "write {mb_s:.0} MB/s, fdatasync p50 {p50:.0} µs p99 {p99:.0} µs, group commit {per_s:.0}/s, \
                     memcpy {gb_s:.2} GB/s"
                ),
            );
            for (metric, v) in [
                (write, mb_s),
                (fsync_p50, p50),
                (fsync_p99, p99),
                (group, per_s),
                (memcpy, gb_s),
            ] {
                self.report.sample(metric, MACHINE, RowKind::Limit, v);
            }
            self.limits.write_mb_s.push(mb_s);
            self.limits.group_commit_per_s.push(per_s);
        }
    }

    /// Runs `f` on every engine, `runs` times, each time in a fresh directory;
    /// the engine order rotates from run to run.
    fn each_run(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut dyn Engine, &Path) -> Outcome,
    ) -> Vec<(String, Outcome)> {
        let mut outcomes = Vec::new();
        let n = self.engines.len();
        for run in 0..self.args.runs {
            for k in 0..n {
                let dir = self.fresh_dir();
                let engine = &mut self.engines[(run + k) % n];
                let who = engine.name().to_owned();
                let outcome = f(engine.as_mut(), dir.path());
                drop(dir);
                let shown = match &outcome {
                    Outcome::Throughput {
                        items,
                        elapsed,
                        partial,
                    } => format!(
                        "{} items in {:.3} s{}",
                        items,
                        elapsed.as_secs_f64(),
                        if partial.is_some() { " (partial)" } else { "" }
                    ),
                    Outcome::Latencies(l) => format!("{} latencies", l.len()),
                    Outcome::Unsupported(_) => "n/a".to_owned(),
                };
                self.progress(what, run, &who, &shown);
                outcomes.push((who, outcome));
            }
        }
        outcomes
    }

    /// Records throughput outcomes as items/s in `rate`, and as MB/s of
    /// `bytes_per_item` in `mb_s` when given.
    fn record_throughput(
        &mut self,
        outcomes: Vec<(String, Outcome)>,
        rate: usize,
        mb_s: Option<(usize, u64)>,
    ) {
        for (who, outcome) in outcomes {
            let metrics: Vec<usize> = std::iter::once(rate).chain(mb_s.map(|(m, _)| m)).collect();
            match outcome {
                Outcome::Throughput {
                    items,
                    elapsed,
                    partial,
                } => {
                    let secs = elapsed.as_secs_f64();
                    self.report
                        .sample(rate, &who, RowKind::Engine, items as f64 / secs);
                    if let Some((m, bytes_per_item)) = mb_s {
                        let mb = (items * bytes_per_item) as f64 / 1e6;
                        self.report.sample(m, &who, RowKind::Engine, mb / secs);
                    }
                    if let Some(note) = partial {
                        for &m in &metrics {
                            self.report.mark_partial(m, &who, &note);
                        }
                    }
                }
                Outcome::Unsupported(reason) => {
                    for &m in &metrics {
                        self.report.unsupported(m, &who, &reason);
                    }
                }
                Outcome::Latencies(_) => panic!("{who}: a throughput workload returned latencies"),
            }
        }
    }

    pub fn workload(&mut self, w: WorkloadId) {
        match w {
            WorkloadId::W1 => self.w1(),
            WorkloadId::W2 => self.batches(w),
            WorkloadId::W3 => self.batches(w),
            WorkloadId::W4 => self.w4(),
            WorkloadId::W5 => self.w5(),
            WorkloadId::W6 => self.w6(),
        }
    }

    fn small_dataset(&self) -> Dataset {
        Dataset::generate(self.sizes.small_records, self.sizes.small_value, 1)
    }

    fn w1(&mut self) {
        let s = self.sizes;
        let desc = format!(
            "{} records ({KEY_BYTES} B key + {} B value), one append call each, no fsync",
            thousands(s.small_records),
            s.small_value
        );
        let rate = self
            .report
            .define(Metric::new("W1", &desc, "records/s", Unit::PerSecond).charted("records/s", ""));
        let data = self.small_dataset();
        let outcomes = self.each_run("W1", |e, dir| e.append_each(dir, &data));
        self.record_throughput(outcomes, rate, None);
    }

    /// W2 and W3: batched appends, in records/s and in MB/s against the
    /// page-cache write limit.
    fn batches(&mut self, w: WorkloadId) {
        let s = self.sizes;
        let (count, value, batch, seed) = match w {
            WorkloadId::W2 => (s.small_records, s.small_value, s.small_batch, 1),
            _ => (s.large_records, s.large_value, s.large_batch, 3),
        };
        let desc = format!(
            "{} records ({KEY_BYTES} B key + {} B value) in batches of {batch}, no fsync",
            thousands(count),
            value
        );
        let rate = self
            .report
            .define(Metric::new(w.name(), &desc, "records/s", Unit::PerSecond));
        let mb_s = self.report.define(
            Metric::new(w.name(), &desc, "MB/s of keys + values", Unit::MegabytesPerSecond)
                .charted("MB/s of keys + values", ""),
        );
        let data = Dataset::generate(count, value, seed);
        let outcomes = self.each_run(w.name(), |e, dir| e.append_batches(dir, &data, batch));
        self.record_throughput(outcomes, rate, Some((mb_s, (KEY_BYTES + value) as u64)));
        for &v in &self.limits.write_mb_s {
            self.report
                .sample(mb_s, "limit: page-cache write", RowKind::Limit, v);
        }
    }

    fn w4(&mut self) {
        let s = self.sizes;
        let desc = format!(
            "read back W2's {} records from offset 0, summing every value byte (written untimed first)",
            thousands(s.small_records)
        );
        let rate = self
            .report
            .define(Metric::new("W4", &desc, "records/s", Unit::PerSecond).charted("records/s", ""));
        let data = self.small_dataset();
        let read = ReadBack {
            data: &data,
            batch: s.small_batch,
            budget: self.args.read_budget,
        };
        let outcomes = self.each_run("W4", |e, dir| e.read_back(dir, read));
        self.record_throughput(outcomes, rate, None);
    }

    fn w5(&mut self) {
        let s = self.sizes;
        let desc = format!(
            "{} durable appends of {} B per thread, each waiting to be durable before the next",
            thousands(s.durable_per_thread),
            s.small_value
        );
        let few = s.durable_threads;
        let many = s.durable_threads_tidelog;
        let rate_few = self.report.define(
            Metric::new("W5", &desc, &format!("appends/s, {few} threads"), Unit::PerSecond)
                .charted("appends/s", &format!("{few} threads")),
        );
        let rate_many = self.report.define(
            Metric::new(
                "W5",
                &desc,
                &format!("appends/s, {many} threads"),
                Unit::PerSecond,
            )
            .charted("appends/s", &format!("{many} threads")),
        );
        let data = Dataset::generate(many * s.durable_per_thread, s.small_value, 5);
        let per_thread = s.durable_per_thread;
        let outcomes = self.each_run("W5", |e, dir| e.durable_appends(dir, &data, few, per_thread));
        self.record_throughput(outcomes, rate_few, None);

        // Many threads: tidelog alone, against the raw group-commit limit.
        let mut tidelog = Tidelog;
        for run in 0..self.args.runs {
            let dir = self.fresh_dir();
            let outcome = tidelog.durable_appends(dir.path(), &data, many, per_thread);
            if let Outcome::Throughput { items, elapsed, .. } = &outcome {
                self.progress(
                    &format!("W5 {many} threads"),
                    run,
                    tidelog.name(),
                    &format!("{items} items in {:.3} s", elapsed.as_secs_f64()),
                );
            }
            self.record_throughput(vec![(tidelog.name().to_owned(), outcome)], rate_many, None);
        }
        for &v in &self.limits.group_commit_per_s {
            self.report
                .sample(rate_many, "limit: group fdatasync", RowKind::Limit, v);
        }
    }

    fn w6(&mut self) {
        let s = self.sizes;
        let desc = format!(
            "start of a send to a blocked consumer receiving the record, one in flight, {} sends \
             ({} B values) after {} untimed",
            thousands(s.e2e_sends),
            s.small_value,
            thousands(s.e2e_warmup)
        );
        let quantiles = [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")];
        let metrics: Vec<usize> = quantiles
            .iter()
            .map(|(_, name)| {
                self.report.define(
                    Metric::new("W6", &desc, &format!("{name} µs"), Unit::Micros)
                        .lower_is_better()
                        .charted("µs", name),
                )
            })
            .collect();
        let data = Dataset::generate(s.e2e_warmup + s.e2e_sends, s.small_value, 6);
        let (warmup, sends) = (s.e2e_warmup, s.e2e_sends);
        let outcomes = self.each_run("W6", |e, dir| e.end_to_end(dir, &data, warmup, sends));
        for (who, outcome) in outcomes {
            match outcome {
                Outcome::Latencies(mut ns) => {
                    ns.sort_unstable();
                    for (&(q, _), &m) in quantiles.iter().zip(&metrics) {
                        let us = percentile(&ns, q) as f64 / 1e3;
                        self.report.sample(m, &who, RowKind::Engine, us);
                    }
                }
                Outcome::Unsupported(reason) => {
                    for &m in &metrics {
                        self.report.unsupported(m, &who, &reason);
                    }
                }
                Outcome::Throughput { .. } => panic!("{who}: W6 returned a throughput"),
            }
        }
    }

    /// Prints the table and the engines' notes, writes the JSON and the charts.
    pub fn finish(&self) {
        let a = &self.args;
        println!(
            "\ntidelog-compare: {} run(s){}. Medians over runs, [min – max]; \
             tidelog ÷ this = tidelog's median divided by that row's median.",
            a.runs,
            if a.quick {
                ", --quick (counts / 100: a smoke test, not a measurement)"
            } else {
                ""
            }
        );
        print!("{}", self.report.table());
        println!("\nHow each engine runs the workloads:");
        for e in &self.engines {
            for note in e.notes() {
                println!("  {}: {note}", e.name());
            }
        }

        std::fs::create_dir_all(&a.out).expect("create the results directory");
        let engine_notes: serde_json::Map<String, serde_json::Value> = self
            .engines
            .iter()
            .map(|e| (e.name().to_owned(), json!(e.notes())))
            .collect();
        let doc = json!({
            "tool": "tidelog-compare",
            "quick": a.quick,
            "runs": a.runs,
            "read_budget_s": a.read_budget.as_secs_f64(),
            "unix_time_s": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            "machine": {
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
                "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default(),
            },
            "engines": {
                "tidelog": "path dependency (this repository)",
                "kafko": "0.2 (default features: no compression)",
                "commitlog": "0.2",
            },
            "engine_notes": engine_notes,
            "metrics": self.report.to_json(),
        });
        let json_path = a.out.join("latest.json");
        let text = serde_json::to_string_pretty(&doc).expect("serialise the results");
        std::fs::write(&json_path, text + "\n").expect("write latest.json");
        println!("\nwrote {}", json_path.display());

        for w in WorkloadId::ALL {
            let charted: Vec<&Metric> = self
                .report
                .metrics
                .iter()
                .filter(|m| m.workload == w.name() && m.chart.is_some())
                .collect();
            let Some(first) = charted.first() else {
                continue;
            };
            let bars = chart::bars_for(&charted);
            let axis = first.chart.as_ref().map_or("", |c| c.axis.as_str());
            let better = if first.higher_is_better { "higher" } else { "lower" };
            let title = format!(
                "{}: {} ({better} is better; median, whiskers min–max over {} run(s){})",
                w.name(),
                axis,
                a.runs,
                if a.quick { ", --quick" } else { "" }
            );
            let path = a.out.join(format!("{}.svg", w.name()));
            chart::draw(&path, &title, axis, first.unit, &bars).expect("draw the chart");
            println!("wrote {}", path.display());
        }
    }
}
