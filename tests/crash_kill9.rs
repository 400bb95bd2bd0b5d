//! Process-crash durability (RELIABILITY.md §1, `Os` column): a record whose
//! `send`/`send_batch` returned `Ok` survives a `kill -9` of the process, and
//! after any crash each partition holds a dense run of offsets from 0 made only
//! of records that were sent, with every `send_batch` group whole.
//!
//! Method: the test binary re-runs itself as a child (`TIDELOG_CRASH_CHILD=1`,
//! `TIDELOG_CRASH_DIR=<dir>`). The child opens the log with `Durability::Os` and
//! 4 KiB segments, creates topic `t` (3 partitions) if missing, prints `READY`,
//! then sends self-checking records forever (key = id, value = id + a payload
//! derived from id; every 5th step a `send_batch` of 3), printing `SENT <id>`
//! before each call and `ACK <id> <partition> <offset>` after `Ok`, each line
//! written and flushed on its own. The parent reads the pipe, SIGKILLs the child
//! after a seeded random number (0..=300) of ACKs, drops a cut last line, opens
//! the same directory in-process and checks every ACK, density, that nothing
//! unsent appears and that batches are whole. State carries over between kills.
//! `TIDELOG_CRASH_ITERS` (default 20) sets the number of kills,
//! `TIDELOG_CRASH_SEED` the seed.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tidelog::{murmur2, Durability, Error, Log, LogConfig, Record, TopicConfig};

const TEST_NAME: &str = "crash_kill9";
const TOPIC: &str = "t";
const PARTITIONS: u32 = 3;
/// Ids of iteration `n` start at `n * ID_STRIDE`, so they never repeat across kills.
const ID_STRIDE: u64 = 1_000_000;

fn topic_config() -> TopicConfig {
    TopicConfig::default().partitions(PARTITIONS).segment_bytes(4096)
}

fn log_config() -> LogConfig {
    LogConfig::default().durability(Durability::Os)
}

fn key_of(id: u64) -> Bytes {
    Bytes::from(id.to_string())
}

/// The value of record `id`: the id, then 16..=215 bytes derived from it.
fn value_of(id: u64) -> Bytes {
    let mut v = id.to_be_bytes().to_vec();
    let len = 16 + (id.wrapping_mul(7919) % 200) as usize;
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    Bytes::from(v)
}

fn partition_of(id: u64) -> u32 {
    ((murmur2(&key_of(id)) & 0x7fff_ffff) as u32) % PARTITIONS
}

fn record_of(id: u64) -> Record {
    Record::new(value_of(id)).with_key(key_of(id))
}

// ---------------------------------------------------------------------------
// child

fn emit(out: &mut std::io::Stdout, line: &str) {
    let mut s = String::with_capacity(line.len() + 1);
    s.push_str(line);
    s.push('\n');
    // The parent is gone (broken pipe): nothing left to do.
    if out.write_all(s.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn child_main(dir: &Path, first_id: u64) -> ! {
    let mut out = std::io::stdout();
    let log = Log::open(dir, log_config()).expect("child: open");
    match log.create_topic(TOPIC, topic_config()) {
        Ok(()) | Err(Error::TopicExists { .. }) => {}
        Err(e) => panic!("child: create_topic: {e}"),
    }
    let producer = log.producer();
    emit(&mut out, "READY");
    let mut id = first_id;
    let mut step = 0u64;
    // Bounded so a child whose parent stopped reading cannot run forever.
    while id < first_id + ID_STRIDE - 3 {
        if step % 5 == 4 {
            let ids = [id, id + 1, id + 2];
            emit(&mut out, &format!("BATCH {} {} {}", ids[0], ids[1], ids[2]));
            for i in ids {
                emit(&mut out, &format!("SENT {i}"));
            }
            let metas = producer
                .send_batch(TOPIC, ids.iter().map(|&i| record_of(i)).collect())
                .expect("send_batch");
            for (i, m) in ids.iter().zip(metas) {
                emit(&mut out, &format!("ACK {i} {} {}", m.partition, m.offset));
            }
            id += 3;
        } else {
            emit(&mut out, &format!("SENT {id}"));
            let m = producer.send(TOPIC, record_of(id)).expect("send");
            emit(&mut out, &format!("ACK {id} {} {}", m.partition, m.offset));
            id += 1;
        }
        step += 1;
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------
// parent

#[derive(Debug)]
enum Line {
    Ready,
    Sent(u64),
    Batch(Vec<u64>),
    Ack(u64, u32, u64),
}

/// Parses one protocol line; other output (libtest's own lines) is ignored. The
/// keyword may follow libtest's `test crash_kill9 ... ` prefix on the same line.
fn parse(line: &str) -> Option<Line> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let start = tokens
        .iter()
        .position(|t| ["READY", "SENT", "BATCH", "ACK"].contains(t))?;
    let t = &tokens[start..];
    let num = |i: usize| -> u64 { t[i].parse().unwrap_or_else(|_| panic!("bad line {line:?}")) };
    Some(match t[0] {
        "READY" => Line::Ready,
        "SENT" => Line::Sent(num(1)),
        "BATCH" => Line::Batch(vec![num(1), num(2), num(3)]),
        _ => Line::Ack(num(1), num(2) as u32, num(3)),
    })
}

/// Seeded xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Default)]
struct History {
    sent: BTreeSet<u64>,
    /// id -> (partition, offset) for every acknowledged record.
    acked: BTreeMap<u64, (u32, u64)>,
    batches: Vec<Vec<u64>>,
}

#[derive(Default)]
struct Tally {
    lost: BTreeSet<u64>,
    invented: u64,
    checked: u64,
    present: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Runs one child until `acks` ACK lines were read, kills it, and records what it printed.
fn run_child(dir: &Path, first_id: u64, acks: u64, history: &mut History) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env("TIDELOG_CRASH_CHILD", "1")
        .env("TIDELOG_CRASH_DIR", dir)
        .env("TIDELOG_CRASH_FIRST_ID", first_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // A line without its newline was cut by the kill: dropped.
                    if !line.ends_with('\n') || tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let handle = |line: &str, history: &mut History| -> Option<Line> {
        let parsed = parse(line)?;
        match &parsed {
            Line::Sent(id) => {
                history.sent.insert(*id);
            }
            Line::Batch(ids) => history.batches.push(ids.clone()),
            Line::Ack(id, p, o) => {
                assert!(history.sent.contains(id), "ACK {id} before SENT {id}");
                assert!(history.acked.insert(*id, (*p, *o)).is_none(), "ACK {id} twice");
            }
            Line::Ready => {}
        }
        Some(parsed)
    };
    let timeout = Duration::from_secs(60);
    // Wait for READY.
    loop {
        let line = rx.recv_timeout(timeout).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("child never printed READY ({e}); status {:?}", child.try_wait());
        });
        if let Some(Line::Ready) = handle(&line, history) {
            break;
        }
    }
    let mut seen = 0;
    while seen < acks {
        match rx.recv_timeout(timeout) {
            Ok(line) => {
                if let Some(Line::Ack(..)) = handle(&line, history) {
                    seen += 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("child exited before {acks} ACKs: {:?}", child.wait());
            }
            Err(e) => {
                let _ = child.kill();
                panic!("child stalled after {seen} ACKs: {e}");
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status:?}"
    );
    // Everything printed before the kill, complete lines only.
    while let Ok(line) = rx.recv() {
        handle(&line, history);
    }
    reader.join().unwrap();
}

/// Opens the directory in-process and checks RELIABILITY.md §1 against the history.
fn check(dir: &Path, history: &History, tally: &mut Tally) {
    let log = Log::open(dir, log_config()).expect("reopen after kill -9");
    let info = log
        .describe(TOPIC)
        .expect("topic t exists (created before READY)");
    assert_eq!(info.config, topic_config(), "the topic keeps its config");
    assert_eq!(info.partitions.len(), PARTITIONS as usize);

    // id -> (partition, offset) of every record present.
    let mut present: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    tally.invented = 0;
    for p in &info.partitions {
        assert_eq!(p.start_offset, 0, "nothing was deleted");
        let mut next = 0u64;
        while next < p.end_offset {
            let recs = log.fetch(TOPIC, p.partition, next, 500).expect("fetch");
            assert!(
                !recs.is_empty(),
                "partition {}: fetch({next}) below end {} is empty",
                p.partition,
                p.end_offset
            );
            for r in recs {
                assert_eq!(
                    r.offset(),
                    next,
                    "partition {}: offsets dense from 0",
                    p.partition
                );
                next += 1;
                let id = r
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| k.parse::<u64>().ok());
                let Some(id) = id else {
                    eprintln!(
                        "partition {} offset {}: record with a foreign key {:?}",
                        p.partition,
                        r.offset(),
                        r.key()
                    );
                    tally.invented += 1;
                    continue;
                };
                let genuine = history.sent.contains(&id)
                    && r.value() == Some(&value_of(id))
                    && partition_of(id) == p.partition
                    && r.headers().is_empty()
                    && !present.contains_key(&id);
                if !genuine {
                    eprintln!(
                        "partition {} offset {}: id {id} not sent, duplicated, misplaced or with other bytes",
                        p.partition,
                        r.offset()
                    );
                    tally.invented += 1;
                }
                present.insert(id, (p.partition, r.offset()));
            }
        }
        assert_eq!(
            next, p.end_offset,
            "partition {}: read up to the end offset",
            p.partition
        );
    }
    tally.present = present.len() as u64;

    // Every acknowledged record is at its partition and offset with its bytes.
    tally.checked = 0;
    for (id, at) in &history.acked {
        if present.get(id) == Some(at) {
            tally.checked += 1;
        } else {
            eprintln!("LOST: ACK {id} at {at:?}, found {:?}", present.get(id));
            tally.lost.insert(*id);
        }
    }

    // Each partition group of a send_batch is wholly there or wholly absent, and consecutive.
    for batch in &history.batches {
        let mut groups: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &id in batch {
            groups.entry(partition_of(id)).or_default().push(id);
        }
        for (p, ids) in groups {
            let found: Vec<Option<(u32, u64)>> = ids.iter().map(|id| present.get(id).copied()).collect();
            let count = found.iter().filter(|f| f.is_some()).count();
            assert!(
                count == 0 || count == ids.len(),
                "batch {batch:?}: partition {p} group is partial: {found:?}"
            );
            if count > 0 {
                let offsets: Vec<u64> = found.iter().map(|f| f.unwrap().1).collect();
                let expected: Vec<u64> = (offsets[0]..offsets[0] + offsets.len() as u64).collect();
                assert_eq!(
                    offsets, expected,
                    "batch {batch:?}: partition {p} group is consecutive"
                );
            }
        }
    }
    log.close().expect("close after check");
}

#[test]
fn crash_kill9() {
    if std::env::var_os("TIDELOG_CRASH_CHILD").is_some() {
        let dir = std::env::var_os("TIDELOG_CRASH_DIR").expect("TIDELOG_CRASH_DIR");
        let first_id = env_u64("TIDELOG_CRASH_FIRST_ID").unwrap_or(0);
        child_main(Path::new(&dir), first_id);
    }
    let iterations = env_u64("TIDELOG_CRASH_ITERS").unwrap_or(20);
    let seed = env_u64("TIDELOG_CRASH_SEED").unwrap_or(0x5eed);
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut history = History::default();
    let mut tally = Tally::default();
    for i in 0..iterations {
        let acks = rng.next() % 301;
        run_child(&dir, (i + 1) * ID_STRIDE, acks, &mut history);
        check(&dir, &history, &mut tally);
        assert!(
            tally.lost.is_empty() && tally.invented == 0,
            "kill {i} (seed {seed:#x}, {acks} ACKs): lost {:?}, invented {}",
            tally.lost,
            tally.invented
        );
    }
    let line = format!(
        "RELIABILITY suite=crash_kill9 mode=os kills={iterations} acked={} checked={} lost={} invented={} \
         present={} seed={seed:#x}",
        history.acked.len(),
        tally.checked,
        tally.lost.len(),
        tally.invented,
        tally.present
    );
    println!("{line}");
    assert_eq!(tally.lost.len(), 0);
    assert_eq!(tally.invented, 0);
    assert!(tally.checked > 0, "no acknowledged record was checked");
    assert_eq!(tally.checked, history.acked.len() as u64);
}
