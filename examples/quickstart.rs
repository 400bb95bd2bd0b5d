//! The README's tour: open a log, create a topic, send, fetch, look up by time.
//! `cargo run --example quickstart`

use tidelog::{Log, LogConfig, Record, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = Log::open("tidelog-demo/quickstart", LogConfig::default())?;
    if !log.topics().iter().any(|t| t == "orders") {
        log.create_topic("orders", TopicConfig::default().partitions(4))?;
    }
    let producer = log.producer();
    let meta = producer.send(
        "orders",
        Record::new("created")
            .with_key("order-42")
            .with_header("trace", "abc"),
    )?;
    println!("sent to partition {} at offset {}", meta.partition, meta.offset);
    let batch = producer.send_batch(
        "orders",
        vec![
            Record::new("paid").with_key("order-42"),
            Record::new("shipped").with_key("order-42"),
        ],
    )?;
    println!("batch landed at {:?}", batch);
    for r in log.fetch("orders", meta.partition, meta.offset, 10)? {
        println!(
            "  {}@{} key={:?} value={:?} headers={:?}",
            r.partition(),
            r.offset(),
            r.key(),
            r.value(),
            r.headers()
        );
    }
    let first = log.offset_for_timestamp("orders", meta.partition, meta.timestamp)?;
    println!("first offset at or after {}: {first:?}", meta.timestamp);
    println!("{:#?}", log.describe("orders")?.partitions);
    log.close()?;
    Ok(())
}
