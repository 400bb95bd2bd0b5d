//! Three members of one group share a 6-partition topic (Kafka's range
//! assignment); then one leaves and the others take over its partitions.
//!
//! `cargo run --example consumer_group`

use std::sync::mpsc;
use std::time::Duration;
use tidelog::{Log, LogConfig, Record, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("tidelog-group-demo-{}", std::process::id()));
    let log = Log::open(&tmp, LogConfig::default())?;
    log.create_topic("jobs", TopicConfig::default().partitions(6))?;
    let producer = log.producer();
    for i in 0..600 {
        producer.send("jobs", Record::new(format!("job {i}")).with_key(format!("k{i}")))?;
    }
    let (report, reports) = mpsc::channel::<String>();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let mut leave_rx = Some(leave_rx);
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let mut handles = Vec::new();
        for member in 0..3 {
            let log = log.clone();
            let report = report.clone();
            let leave = if member == 2 { leave_rx.take() } else { None };
            handles.push(s.spawn(move || -> tidelog::Result<()> {
                let mut c = log.consumer("workers");
                c.subscribe(&["jobs"])?;
                let mut seen = 0;
                for round in 0..40 {
                    seen += c.poll(Duration::from_millis(20))?.len();
                    if round == 10 {
                        let _ = report.send(format!("member {member} owns {:?}", c.assignment()));
                    }
                    if let Some(rx) = &leave {
                        if rx.try_recv().is_ok() {
                            c.commit()?;
                            let _ = report.send(format!("member {member} leaves after {seen} records"));
                            return Ok(());
                        }
                    }
                    c.commit()?;
                }
                let _ = report.send(format!(
                    "member {member} finally owns {:?} ({seen} records)",
                    c.assignment()
                ));
                Ok(())
            }));
        }
        drop(report);
        std::thread::sleep(Duration::from_millis(400));
        let _ = leave_tx.send(());
        for h in handles {
            h.join().map_err(|_| "a member panicked")??;
        }
        Ok(())
    })?;
    for line in reports {
        println!("{line}");
    }
    for l in log.group_lag("workers")? {
        println!(
            "  jobs-{}: committed {:?} of {}",
            l.partition, l.committed, l.end_offset
        );
    }
    log.close()?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
