//! The outbox pattern: a service changes its state and records the event
//! that announces it in one step (here: one `send_batch` to one partition,
//! which is atomic: after any crash both records are there or neither), and
//! a relay consumer publishes the events, committing its position only after
//! each one is out, so every event is delivered at least once.
//! `cargo run --example outbox`

use std::time::Duration;
use tidelog::{Durability, Log, LogConfig, Record, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Always: a send returns once it is durable (group-committed fsync).
    let log = Log::open(
        "tidelog-demo/outbox",
        LogConfig::default().durability(Durability::Always),
    )?;
    if !log.topics().iter().any(|t| t == "orders") {
        log.create_topic("orders", TopicConfig::default())?;
    }
    let producer = log.producer();
    for id in 1..=3 {
        // The state change and its outgoing event, in one atomic batch.
        producer.send_batch(
            "orders",
            vec![
                Record::new(format!("order {id}: placed")).with_header("kind", "state"),
                Record::new(format!("OrderPlaced {{ id: {id} }}")).with_header("kind", "outbox"),
            ],
        )?;
    }

    // The relay: publishes outbox events and commits after each.
    let mut relay = log.consumer("outbox-relay");
    relay.subscribe(&["orders"])?;
    let mut published = 0;
    loop {
        let batch = relay.poll(Duration::from_millis(200))?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            let outbox = r
                .headers()
                .iter()
                .any(|(k, v)| k == "kind" && v.as_deref() == Some(&b"outbox"[..]));
            if outbox {
                // Publishing to the outside world would happen here.
                println!(
                    "publish {}",
                    String::from_utf8_lossy(r.value().map_or(&[][..], |v| &v[..]))
                );
                published += 1;
            }
            relay.commit_offsets(&[(r.topic(), r.partition(), r.offset() + 1)])?;
        }
    }
    println!("{published} events published; the relay resumes after them next run");
    drop(relay);
    log.close()?;
    Ok(())
}
