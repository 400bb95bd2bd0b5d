//! Collected results: one metric per measured quantity (W2's records/s, W2's
//! MB/s, ...), each with one row per engine and per machine limit. Prints the
//! table and turns it into JSON.

use crate::stats::Summary;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// How a metric's numbers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Records or appends per second.
    PerSecond,
    /// 10^6 bytes per second.
    MegabytesPerSecond,
    /// 10^9 bytes per second.
    GigabytesPerSecond,
    /// Microseconds.
    Micros,
}

impl Unit {
    /// The number, shortened for a table cell or a chart label.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::PerSecond => format_count(v),
            Unit::MegabytesPerSecond | Unit::Micros => {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
            Unit::GigabytesPerSecond => format!("{v:.2}"),
        }
    }
}

/// 1234567 as "1.23 M", 95100 as "95.1 K".
pub fn format_count(v: f64) -> String {
    let (scaled, suffix) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " K")
    } else {
        (v, "")
    };
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{suffix}")
}

/// Whether a row is an engine or a limit of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Engine,
    Limit,
}

/// One engine's or one limit's samples of a metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub who: String,
    pub kind: RowKind,
    pub samples: Vec<f64>,
    /// Why the engine cannot do this workload.
    pub unsupported: Option<String>,
    /// Remarks on samples, without repeats: set only when a run was partial.
    pub notes: Vec<String>,
}

/// One measured quantity of a workload.
#[derive(Debug, Clone)]
pub struct Metric {
    /// "W1".."W6", or "limits".
    pub workload: &'static str,
    /// What the workload does, shown above its rows.
    pub description: String,
    /// The quantity and its unit, e.g. "records/s" or "p99 µs".
    pub name: String,
    pub unit: Unit,
    pub higher_is_better: bool,
    /// Set when this metric's bars go in the workload's chart.
    pub chart: Option<ChartSpec>,
    pub rows: Vec<Row>,
}

/// How a metric appears in its workload's chart.
#[derive(Debug, Clone)]
pub struct ChartSpec {
    /// The y axis title (shared by every charted metric of the workload).
    pub axis: String,
    /// Added to each bar's label when a workload charts several metrics.
    pub series: String,
}

impl Metric {
    /// A metric with no rows yet, higher being better, not charted.
    pub fn new(workload: &'static str, description: &str, name: &str, unit: Unit) -> Metric {
        Metric {
            workload,
            description: description.to_owned(),
            name: name.to_owned(),
            unit,
            higher_is_better: true,
            chart: None,
            rows: Vec::new(),
        }
    }

    #[must_use]
    pub fn lower_is_better(mut self) -> Metric {
        self.higher_is_better = false;
        self
    }

    /// Charts this metric, on a y axis titled `axis`; `series` tells its bars
    /// apart from another charted metric's.
    #[must_use]
    pub fn charted(mut self, axis: &str, series: &str) -> Metric {
        self.chart = Some(ChartSpec {
            axis: axis.to_owned(),
            series: series.to_owned(),
        });
        self
    }
}

impl Metric {
    /// The median of tidelog's samples, if any.
    fn tidelog_median(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.who == "tidelog")
            .and_then(|r| Summary::of(&r.samples))
            .map(|s| s.median)
    }

    /// tidelog's median divided by this row's median (`None` for tidelog's
    /// own row and for rows without samples).
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        if row.who == "tidelog" {
            return None;
        }
        let theirs = Summary::of(&row.samples)?.median;
        let ours = self.tidelog_median()?;
        (theirs > 0.0).then(|| ours / theirs)
    }
}

/// Every metric, in the order defined.
#[derive(Debug, Default)]
pub struct Report {
    pub metrics: Vec<Metric>,
}

impl Report {
    /// Adds a metric; returns its index.
    pub fn define(&mut self, metric: Metric) -> usize {
        self.metrics.push(metric);
        self.metrics.len() - 1
    }

    fn row(&mut self, metric: usize, who: &str, kind: RowKind) -> &mut Row {
        let rows = &mut self.metrics[metric].rows;
        if let Some(i) = rows.iter().position(|r| r.who == who) {
            return &mut rows[i];
        }
        rows.push(Row {
            who: who.to_owned(),
            kind,
            samples: Vec::new(),
            unsupported: None,
            notes: Vec::new(),
        });
        rows.last_mut().expect("row just pushed")
    }

    /// Records one run's value of `metric` for `who`.
    pub fn sample(&mut self, metric: usize, who: &str, kind: RowKind, value: f64) {
        self.row(metric, who, kind).samples.push(value);
    }

    /// Records that `who` cannot do `metric`, and why.
    pub fn unsupported(&mut self, metric: usize, who: &str, reason: &str) {
        self.row(metric, who, RowKind::Engine).unsupported = Some(reason.to_owned());
    }

    /// Marks `who`'s row of `metric` partial, saying why (once per distinct text).
    pub fn mark_partial(&mut self, metric: usize, who: &str, note: &str) {
        let row = self.row(metric, who, RowKind::Engine);
        if !row.notes.iter().any(|n| n == note) {
            row.notes.push(note.to_owned());
        }
    }

    /// The results table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut lines: Vec<[String; 5]> = Vec::new();
        let mut out = String::new();
        let mut footnotes: Vec<String> = Vec::new();
        let mut last_workload = "";
        let mut last_description = String::new();
        let header = [
            "metric".to_owned(),
            "engine / limit".to_owned(),
            "median".to_owned(),
            "[min – max]".to_owned(),
            "tidelog ÷ this".to_owned(),
        ];
        for m in &self.metrics {
            if m.workload != last_workload || m.description != last_description {
                if !lines.is_empty() {
                    write_block(&mut out, &lines);
                    lines.clear();
                }
                let _ = writeln!(out, "\n{}  {}", m.workload, m.description);
                lines.push(header.clone());
                last_workload = m.workload;
                last_description.clone_from(&m.description);
            }
            let better = if m.higher_is_better { "higher" } else { "lower" };
            let mut metric_cell = format!("{} ({better} is better)", m.name);
            for row in &m.rows {
                let mut cells = [
                    std::mem::take(&mut metric_cell),
                    row.who.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                ];
                if let Some(reason) = &row.unsupported {
                    cells[2] = format!(
                        "n/a [{}]",
                        footnote(&mut footnotes, &format!("{}: {reason}", row.who))
                    );
                } else if let Some(s) = Summary::of(&row.samples) {
                    let mut median = m.unit.format(s.median);
                    for note in &row.notes {
                        let _ = write!(
                            median,
                            " [{}]",
                            footnote(&mut footnotes, &format!("{}: {note}", row.who))
                        );
                    }
                    cells[2] = median;
                    cells[3] = format!("[{} – {}]", m.unit.format(s.min), m.unit.format(s.max));
                    if let Some(r) = m.ratio(row) {
                        cells[4] = format!("{r:.2}");
                    }
                }
                lines.push(cells);
            }
        }
        if !lines.is_empty() {
            write_block(&mut out, &lines);
        }
        for (i, f) in footnotes.iter().enumerate() {
            let _ = writeln!(out, "\n[{}] {f}", i + 1);
        }
        out
    }

    /// Every metric with its samples, summaries and ratios.
    pub fn to_json(&self) -> Value {
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| {
                let rows: Vec<Value> = m
                    .rows
                    .iter()
                    .map(|r| {
                        let s = Summary::of(&r.samples);
                        json!({
                            "who": r.who,
                            "kind": match r.kind { RowKind::Engine => "engine", RowKind::Limit => "limit" },
                            "median": s.map(|s| s.median),
                            "min": s.map(|s| s.min),
                            "max": s.map(|s| s.max),
                            "samples": r.samples,
                            "tidelog_over_this": m.ratio(r),
                            "unsupported": r.unsupported,
                            "notes": r.notes,
                        })
                    })
                    .collect();
                json!({
                    "workload": m.workload,
                    "description": m.description,
                    "metric": m.name,
                    "higher_is_better": m.higher_is_better,
                    "rows": rows,
                })
            })
            .collect();
        Value::Array(metrics)
    }
}

/// The number of footnote `text`, adding it if new.
fn footnote(footnotes: &mut Vec<String>, text: &str) -> usize {
    let index = match footnotes.iter().position(|f| f == text) {
        Some(i) => i,
        None => {
            footnotes.push(text.to_owned());
            footnotes.len() - 1
        }
    };
    index + 1
}

/// Writes rows of five cells as aligned columns (text left, numbers right).
fn write_block(out: &mut String, lines: &[[String; 5]]) {
    let mut widths = [0usize; 5];
    for line in lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in lines {
        let mut text = String::from(" ");
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            if i == 2 || i == 4 {
                let _ = write!(text, "  {}{cell}", " ".repeat(pad));
            } else {
                let _ = write!(text, "  {cell}{}", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_shortened() {
        assert_eq!(format_count(1_234_567.0), "1.23 M");
        assert_eq!(format_count(95_100.0), "95.1 K");
        assert_eq!(format_count(812.0), "812");
        assert_eq!(format_count(3.5), "3.50");
    }

    #[test]
    fn ratio_is_tidelog_over_the_row() {
        let mut r = Report::default();
        let m = r.define(Metric::new("W1", "one call each", "records/s", Unit::PerSecond));
        for v in [10.0, 12.0, 11.0] {
            r.sample(m, "tidelog", RowKind::Engine, v);
            r.sample(m, "peer", RowKind::Engine, v / 2.0);
        }
        r.unsupported(m, "other", "cannot");
        let metric = &r.metrics[m];
        assert_eq!(metric.ratio(&metric.rows[0]), None);
        assert_eq!(metric.ratio(&metric.rows[1]), Some(2.0));
        assert_eq!(metric.ratio(&metric.rows[2]), None);
        let table = r.table();
        assert!(table.contains("n/a"), "{table}");
        assert!(table.contains("2.00"), "{table}");
    }
}
