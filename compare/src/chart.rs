//! One SVG bar chart per workload: the median of every engine and limit as a
//! bar, the range over runs as a whisker, the median written above it.

use crate::report::{Metric, RowKind, Unit};
use crate::stats::Summary;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;
use std::path::Path;

/// Pixels per bar, and the chart's fixed parts.
const BAR_WIDTH: u32 = 150;
const MIN_WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

/// One bar: a row of a metric.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub who: String,
    pub kind: RowKind,
    /// Median, min, max; `None` when the engine cannot do the workload.
    pub value: Option<Summary>,
}

/// The bars of a workload's charted metrics. With more than one metric each
/// label also names the metric. All charted metrics of a workload share a unit.
pub fn bars_for(metrics: &[&Metric]) -> Vec<Bar> {
    let several = metrics.len() > 1;
    let mut bars = Vec::new();
    for m in metrics {
        for row in &m.rows {
            let series = m.chart.as_ref().map_or("", |c| c.series.as_str());
            let label = if several && !series.is_empty() && row.kind == RowKind::Engine {
                format!("{} {series}", row.who)
            } else {
                row.who.clone()
            };
            // Partial rows carry a note (see the table's footnotes).
            let label = if row.notes.is_empty() {
                label
            } else {
                format!("{label} (partial)")
            };
            let value = if row.unsupported.is_some() {
                None
            } else {
                Summary::of(&row.samples)
            };
            bars.push(Bar {
                label,
                who: row.who.clone(),
                kind: row.kind,
                value,
            });
        }
    }
    bars
}

fn color(bar: &Bar) -> RGBColor {
    match (bar.kind, bar.who.as_str()) {
        (RowKind::Limit, _) => RGBColor(150, 150, 150),
        (_, "tidelog") => RGBColor(31, 119, 180),
        (_, "kafko") => RGBColor(255, 127, 14),
        (_, "commitlog") => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

/// Draws `bars` into an SVG file at `path`. Latencies go on a logarithmic
/// axis (their tail is orders of magnitude above their median), everything
/// else on a linear axis from zero.
pub fn draw(path: &Path, title: &str, y_label: &str, unit: Unit, bars: &[Bar]) -> Result<(), Box<dyn Error>> {
    assert!(!bars.is_empty(), "a chart needs at least one bar");
    let values = || bars.iter().filter_map(|b| b.value);
    let top = values().map(|s| s.max.max(s.median)).fold(0.0, f64::max);
    if unit == Unit::Micros && top > 0.0 {
        let bottom = values()
            .map(|s| s.min.min(s.median))
            .fold(f64::INFINITY, f64::min);
        let floor = (bottom / 2.0).max(f64::MIN_POSITIVE);
        draw_on(
            (floor..top * 2.0).log_scale(),
            floor,
            path,
            title,
            y_label,
            unit,
            bars,
        )
    } else {
        let top = if top > 0.0 { top * 1.15 } else { 1.0 };
        draw_on(0f64..top, 0.0, path, title, y_label, unit, bars)
    }
}

/// Draws the bars on the y axis `y`, bars rising from `base`.
fn draw_on<Y>(
    y: Y,
    base: f64,
    path: &Path,
    title: &str,
    y_label: &str,
    unit: Unit,
    bars: &[Bar],
) -> Result<(), Box<dyn Error>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let width = (BAR_WIDTH * bars.len() as u32 + 160).max(MIN_WIDTH);
    let root = SVGBackend::new(path, (width, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let last = bars.len() as u32 - 1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0u32..last).into_segmented(), y)?;
    let label_of = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i as usize).map(|b| b.label.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    let format_y = |y: &f64| unit.format(*y);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&label_of)
        .y_label_formatter(&format_y)
        .y_desc(y_label)
        .draw()?;

    chart.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
        let s = b.value?;
        let i = i as u32;
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), base),
                (SegmentValue::Exact(i + 1), s.median),
            ],
            color(b).filled(),
        );
        rect.set_margin(0, 0, 20, 20);
        Some(rect)
    }))?;
    chart.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
        let s = b.value?;
        let x = || SegmentValue::CenterOf(i as u32);
        Some(PathElement::new(
            vec![(x(), s.min), (x(), s.max)],
            BLACK.stroke_width(2),
        ))
    }))?;
    let label_style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let (text, y) = match b.value {
            Some(s) => (unit.format(s.median), s.max.max(s.median)),
            None => ("n/a".to_owned(), base),
        };
        Text::new(text, (SegmentValue::CenterOf(i as u32), y), label_style.clone())
    }))?;
    root.present()?;
    Ok(())
}
