//! The storage engine on its own: open a partition directory, append, read back
//! by offset and by timestamp, close. Run with
//! `cargo run --release --features internals --example engine`.

use std::sync::Arc;
use tidelog::internals::{PartitionConfig, PartitionLog, RealFs};
use tidelog::{Record, SystemClock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tidelog-demo/engine-0".to_string());
    let (log, report) = PartitionLog::open(
        RealFs::shared(),
        Arc::new(SystemClock),
        &dir,
        PartitionConfig::default(),
    )?;
    println!("opened {dir}: {report:?}");
    let start = log.end_offset();
    let appended = log.append_records(&[
        Record::new("created")
            .with_key("order-1")
            .with_header("trace", "abc"),
        Record::new("paid").with_key("order-1"),
        Record::tombstone("order-0"),
    ])?;
    println!(
        "appended offsets {}..={}",
        appended.base_offset, appended.last_offset
    );
    for r in log.read(start, 10)? {
        println!(
            "  offset {} ts {} key {:?} value {:?} headers {:?}",
            r.offset, r.timestamp, r.key, r.value, r.headers
        );
    }
    println!(
        "first offset at or after that timestamp: {:?}",
        log.offset_for_timestamp(appended.base_timestamp)?
    );
    log.close()?;
    Ok(())
}
