//! Event sourcing: an account's balance is never stored, only its events;
//! the aggregate is rebuilt by replaying them, starting from a snapshot and
//! the offset it covers, so a restart replays only what came after it.
//! `cargo run --example event_sourcing` (run it twice: the second run
//! resumes from the snapshot).

use tidelog::{Log, LogConfig, Record, TopicConfig};

/// The aggregate: what the events add up to.
#[derive(Debug, Default, Clone, Copy)]
struct Account {
    balance: i64,
    events: u64,
}

impl Account {
    fn apply(&mut self, event: &str) {
        let (kind, amount) = event.split_once(' ').unwrap_or((event, "0"));
        let amount: i64 = amount.parse().unwrap_or(0);
        match kind {
            "deposited" => self.balance += amount,
            "withdrew" => self.balance -= amount,
            _ => {}
        }
        self.events += 1;
    }
}

/// Replays the account's events from `from` onto `state`; returns the next offset.
fn replay(log: &Log, account: &str, mut state: Account, from: u64) -> tidelog::Result<(Account, u64)> {
    let end = log.describe("accounts")?.partitions[0].end_offset;
    let mut next = from;
    while next < end {
        let fetched = log.fetch_each("accounts", 0, next, 1000, |r| {
            if r.key() == Some(account.as_bytes()) {
                state.apply(std::str::from_utf8(r.value().unwrap_or_default()).unwrap_or(""));
            }
        })?;
        next = fetched.next_offset;
    }
    Ok((state, next))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = Log::open("tidelog-demo/event-sourcing", LogConfig::default())?;
    if !log.topics().iter().any(|t| t == "accounts") {
        // One partition: every event of every account in one order.
        log.create_topic("accounts", TopicConfig::default().retention_ms(None))?;
    }
    // The snapshot: the state and the offset it covers (kept in a file here;
    // any store works, since the log can always replay from it).
    let snapshot_path = std::path::Path::new("tidelog-demo/event-sourcing/snapshot");
    let (snapshot, from) = match std::fs::read_to_string(snapshot_path) {
        Ok(s) => {
            let v: Vec<i64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            let (balance, events, offset) = (
                v.first().copied().unwrap_or(0),
                v.get(1).copied().unwrap_or(0),
                v.get(2).copied().unwrap_or(0),
            );
            (
                Account {
                    balance,
                    events: events as u64,
                },
                offset as u64,
            )
        }
        Err(_) => (Account::default(), 0),
    };
    let (mut account, mut next) = replay(&log, "alice", snapshot, from)?;
    println!("rebuilt from offset {from}: {account:?}");

    // New commands become events; the state follows by applying them.
    let producer = log.producer();
    for event in ["deposited 100", "withdrew 30", "deposited 5"] {
        let meta = producer.send("accounts", Record::new(event).with_key("alice"))?;
        account.apply(event);
        next = meta.offset + 1;
    }
    println!("after three new events: {account:?}");

    // A replay from scratch agrees with the state built incrementally.
    let (from_scratch, _) = replay(&log, "alice", Account::default(), 0)?;
    assert_eq!(from_scratch.balance, account.balance);
    std::fs::write(
        snapshot_path,
        format!("{} {} {next}", account.balance, account.events),
    )?;
    println!("snapshot written at offset {next}");
    log.close()?;
    Ok(())
}
