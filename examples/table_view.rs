//! A table view: the latest profile of every user, from a compacted topic of
//! profile updates. The table keeps keys and positions in memory and reads
//! values zero-copy from the log; it is current as of every call and is
//! rebuilt from the log after a restart.
//! `cargo run --example table_view`

use tidelog::{Cleanup, Log, LogConfig, Record, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = Log::open("tidelog-demo/table-view", LogConfig::default())?;
    if !log.topics().iter().any(|t| t == "profiles") {
        log.create_topic(
            "profiles",
            TopicConfig::default().partitions(2).cleanup(Cleanup::Compact),
        )?;
    }
    let producer = log.producer();
    producer.send("profiles", Record::new("Ada, London").with_key("u1"))?;
    producer.send("profiles", Record::new("Grace, Arlington").with_key("u2"))?;
    producer.send("profiles", Record::new("Ada, Cambridge").with_key("u1"))?;

    let mut profiles = log.table("profiles")?;
    println!("u1 = {:?}", profiles.get(b"u1")?);
    producer.send("profiles", Record::tombstone("u2"))?;
    println!("u2 after its tombstone = {:?}", profiles.get(b"u2")?);
    for (key, value) in profiles.entries()? {
        println!(
            "{} -> {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }
    println!("{} live keys", profiles.len()?);
    drop(profiles);
    log.close()?;
    Ok(())
}
