#![cfg(all(feature = "tracing", feature = "metrics"))]
//! The `tracing` and `metrics` features: what a service sees through the
//! facades. Events are captured by a minimal subscriber, measurements by
//! metrics-util's debugging recorder (installed once for this test binary).

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::sync::{Arc, Mutex};
use tidelog::{Cleanup, Log, LogConfig, Record, TopicConfig};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Metadata, Subscriber};

/// Records every event's message and fields as one line.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);
impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!(
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        ));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn events_and_metrics_describe_what_the_log_does() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let capture = Capture::default();
    let tmp = tempfile::tempdir().unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        let log = Log::open(tmp.path(), LogConfig::default().maintenance_interval(None)).unwrap();
        log.create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(1024)
                .retention_bytes(Some(2048)),
        )
        .unwrap();
        log.create_topic("c", TopicConfig::default().cleanup(Cleanup::Compact))
            .unwrap();
        let p = log.producer();
        for i in 0..100 {
            p.send("t", Record::new(vec![b'x'; 100]).with_key(format!("k{i}")))
                .unwrap();
        }
        p.send_batch("t", (0..10).map(|_| Record::new("b")).collect())
            .unwrap();
        let mut c = log.consumer("g");
        c.subscribe(&["t"]).unwrap();
        log.flush().unwrap();
        log.run_maintenance().unwrap();
        let mut billing = log.consumer("billing");
        billing.assign(&[("t", 0)]).unwrap();
        billing.commit_offsets(&[("t", 0, 100)]).unwrap();
        log.group_lag("billing").unwrap();
        drop(billing);
        drop(c);
        log.close().unwrap();
    });
    let lines = capture.0.lock().unwrap().clone();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    for needle in [
        "INFO tidelog message=log opened",
        "DEBUG tidelog message=segment rolled",
        "INFO tidelog message=retention deleted segments topic=\"t\"",
        "INFO tidelog message=group rebalanced group=\"g\" generation=1 members=1",
        "INFO tidelog message=partition recovered",
    ] {
        assert!(has(needle), "no event {needle:?} in:\n{}", lines.join("\n"));
    }

    let metrics: Vec<(String, Vec<String>, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    let counter = |name: &str, label: &str| {
        metrics.iter().find_map(|(n, l, v)| match v {
            DebugValue::Counter(c) if n == name && (label.is_empty() || l.iter().any(|x| x == label)) => {
                Some(*c)
            }
            _ => None,
        })
    };
    assert_eq!(counter("tidelog_appended_records_total", "topic=t"), Some(110));
    assert!(counter("tidelog_appended_bytes_total", "topic=t").unwrap_or(0) > 100 * 100);
    assert!(counter("tidelog_segments_deleted_total", "").unwrap_or(0) > 0);
    let histogram = |name: &str| {
        metrics.iter().find_map(|(n, _, v)| match v {
            DebugValue::Histogram(h) if n == name => Some(h.len()),
            _ => None,
        })
    };
    assert_eq!(
        histogram("tidelog_append_seconds"),
        Some(101),
        "100 sends and one send_batch"
    );
    assert!(histogram("tidelog_fsync_seconds").unwrap_or(0) > 0);
    assert!(metrics.iter().any(|(n, _, _)| n == "tidelog_open_partitions"));
    let lag = metrics.iter().find_map(|(n, l, v)| match v {
        DebugValue::Gauge(g) if n == "tidelog_consumer_lag" && l.iter().any(|x| x == "group=billing") => {
            Some(g.into_inner())
        }
        _ => None,
    });
    assert_eq!(lag, Some(10.0), "110 records, committed at 100");
}
