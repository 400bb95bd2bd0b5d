//! `Consumer::next_batch` under tokio: a consumer task awaits records without
//! blocking a runtime thread, while a producer on another thread sends them.
//! `cargo run --example tokio_consumer`

use std::time::Duration;
use tidelog::{Log, LogConfig, Record, TopicConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new("tidelog-demo/tokio");
    let _ = std::fs::remove_dir_all(dir);
    let log = Log::open(dir, LogConfig::default())?;
    log.create_topic("ticks", TopicConfig::default())?;

    let producer = log.producer();
    let sender = std::thread::spawn(move || {
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            producer.send("ticks", Record::new(format!("tick {i}"))).unwrap();
        }
    });

    let mut consumer = log.consumer("tokio-demo");
    consumer.subscribe(&["ticks"])?;
    let mut seen = 0;
    while seen < 5 {
        // On a single-threaded runtime: the await yields, the producer's send wakes it.
        for r in consumer.next_batch().await? {
            println!("{}@{}: {:?}", r.partition(), r.offset(), r.value());
            seen += 1;
        }
    }
    sender.join().expect("producer thread");
    drop(consumer);
    log.close()?;
    Ok(())
}
