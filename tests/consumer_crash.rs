//! Process-crash durability of consumer commits (API.md "Consuming",
//! RELIABILITY.md §1 `consumer.commit()` row and §2.6): a position whose
//! `commit()` returned survives a `kill -9` of the process, is never moved back,
//! never points past the end of the partition, and is exactly where the next
//! consumer of the group resumes.
//!
//! Method: the parent fills topic `t` (2 partitions) with N = 2000 records whose
//! values name their partition and offset. The test binary then re-runs itself
//! as a child (`TIDELOG_CONSUMER_CHILD=1`, `TIDELOG_CONSUMER_DIR=<dir>`), which
//! opens the log, prints the group's committed offsets (`COMMITTED <p> <c>`),
//! subscribes as group `g`, prints `READY`, and loops: `poll`, check each record
//! (value, and offsets consecutive per partition from where it started, the
//! first one printed as `START <p> <offset>`), `commit()`, and after `commit`
//! returned prints `COMMIT <partition> <position>` for each partition it owns,
//! each line written and flushed on its own. The parent reads the pipe and
//! SIGKILLs the child after a seeded random number of COMMIT lines (plus a
//! seeded random delay of up to 2 ms), keeps complete lines only, then opens the
//! log in-process and checks, per partition: committed >= the last COMMIT ever
//! printed for it (a returned commit is never lost), committed <= end offset,
//! `group_lag` agrees; and that the child had seen the previous committed
//! offsets (`COMMITTED`) and resumed exactly there (`START`). State carries
//! over between kills; the parent appends more records when fewer than 700 are
//! left unread in a partition, so long runs keep consuming. At the end a fresh
//! consumer of the group resumes exactly at the committed positions.
//! `TIDELOG_CONSUMER_CRASH_ITERS` (default 10) sets the number of kills,
//! `TIDELOG_CONSUMER_CRASH_SEED` the seed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tidelog::{Log, LogConfig, Record, TopicConfig};

const TEST_NAME: &str = "consumer_crash";
const TOPIC: &str = "t";
const GROUP: &str = "g";
const PARTITIONS: u32 = 2;
const N: u64 = 2000;
/// Fewer unread records than this in a partition: the parent appends `TOP_UP` more.
const LOW_WATER: u64 = 700;
const TOP_UP: u64 = 1000;

fn topic_config() -> TopicConfig {
    TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(16 * 1024)
}

fn value_of(partition: u32, offset: u64) -> String {
    format!("rec-{partition}-{offset}-{}", "x".repeat((offset % 17) as usize))
}

fn end_offsets(log: &Log) -> Vec<u64> {
    log.describe(TOPIC)
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect()
}

/// Appends `n` records to `partition` in batches of 100.
fn append(log: &Log, partition: u32, n: u64) {
    let producer = log.producer();
    let mut next = end_offsets(log)[partition as usize];
    let end = next + n;
    while next < end {
        let upto = (next + 100).min(end);
        for o in next..upto {
            let m = producer
                .send_to(TOPIC, partition, Record::new(value_of(partition, o)))
                .expect("send_to");
            assert_eq!(m.offset, o);
        }
        next = upto;
    }
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

fn child_main(dir: &Path, max_poll: usize) -> ! {
    let mut out = std::io::stdout();
    let log = Log::open(dir, LogConfig::default()).expect("child: open");
    let mut c = log.consumer(GROUP);
    for p in 0..PARTITIONS {
        let committed = c.committed(TOPIC, p).expect("child: committed");
        let shown = committed.map_or("none".to_string(), |c| c.to_string());
        emit(&mut out, &format!("COMMITTED {p} {shown}"));
    }
    c.subscribe(&[TOPIC]).expect("child: subscribe");
    c.max_poll_records(max_poll);
    emit(&mut out, "READY");
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut idle = 0;
    loop {
        let batch = c.poll(Duration::from_millis(200)).expect("child: poll");
        if batch.is_empty() {
            idle += 1;
            if idle > 100 {
                emit(&mut out, "IDLE");
                std::process::exit(0);
            }
            continue;
        }
        idle = 0;
        for r in &batch {
            let p = r.partition();
            let want = value_of(p, r.offset());
            if r.topic() != TOPIC || r.value().map(|v| v.as_ref()) != Some(want.as_bytes()) {
                emit(&mut out, &format!("BAD {p} {} wrong topic or value", r.offset()));
                std::process::exit(3);
            }
            match next.get(&p) {
                None => emit(&mut out, &format!("START {p} {}", r.offset())),
                Some(&n) if n != r.offset() => {
                    emit(&mut out, &format!("BAD {p} {} expected offset {n}", r.offset()));
                    std::process::exit(3);
                }
                Some(_) => {}
            }
            next.insert(p, r.offset() + 1);
        }
        c.commit().expect("child: commit");
        let mut owned = c.assignment();
        owned.sort();
        for (_, p) in owned {
            let pos = c.position(TOPIC, p).expect("child: position");
            emit(&mut out, &format!("COMMIT {p} {pos}"));
        }
    }
}

// ---------------------------------------------------------------------------
// parent

#[derive(Debug)]
enum Line {
    Committed(u32, Option<u64>),
    Ready,
    Start(u32, u64),
    Commit(u32, u64),
    Bad(String),
    Idle,
}

/// Parses one protocol line; other output (libtest's own lines) is ignored. The
/// keyword may follow libtest's `test consumer_crash ... ` prefix on the same line.
fn parse(line: &str) -> Option<Line> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let start = tokens
        .iter()
        .position(|t| ["COMMITTED", "READY", "START", "COMMIT", "BAD", "IDLE"].contains(t))?;
    let t = &tokens[start..];
    let num = |i: usize| -> u64 { t[i].parse().unwrap_or_else(|_| panic!("bad line {line:?}")) };
    Some(match t[0] {
        "COMMITTED" => Line::Committed(num(1) as u32, if t[2] == "none" { None } else { Some(num(2)) }),
        "READY" => Line::Ready,
        "START" => Line::Start(num(1) as u32, num(2)),
        "COMMIT" => Line::Commit(num(1) as u32, num(2)),
        "BAD" => Line::Bad(t[1..].join(" ")),
        _ => Line::Idle,
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

/// What one child printed (complete lines only).
#[derive(Default, Debug)]
struct Run {
    committed_seen: BTreeMap<u32, Option<u64>>,
    starts: BTreeMap<u32, u64>,
    /// Every COMMIT line, in order.
    commits: Vec<(u32, u64)>,
}

/// Runs one child until it printed `kill_after` COMMIT lines, waits a little, SIGKILLs it.
fn run_child(dir: &Path, max_poll: usize, kill_after: u64, delay_us: u64) -> Run {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env("TIDELOG_CONSUMER_CHILD", "1")
        .env("TIDELOG_CONSUMER_DIR", dir)
        .env("TIDELOG_CONSUMER_MAX_POLL", max_poll.to_string())
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
    let mut run = Run::default();
    let handle = |line: &str, run: &mut Run| -> Option<Line> {
        let parsed = parse(line)?;
        match &parsed {
            Line::Committed(p, c) => {
                run.committed_seen.insert(*p, *c);
            }
            Line::Start(p, o) => {
                assert!(run.starts.insert(*p, *o).is_none(), "START {p} twice");
            }
            Line::Commit(p, o) => run.commits.push((*p, *o)),
            Line::Bad(what) => panic!("the child read a wrong record: {what}"),
            Line::Idle => panic!("the child ran out of records before the kill"),
            Line::Ready => {}
        }
        Some(parsed)
    };
    let timeout = Duration::from_secs(60);
    loop {
        let line = rx.recv_timeout(timeout).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("child never printed READY ({e}); status {:?}", child.try_wait());
        });
        if let Some(Line::Ready) = handle(&line, &mut run) {
            break;
        }
    }
    let mut seen = 0;
    while seen < kill_after {
        match rx.recv_timeout(timeout) {
            Ok(line) => {
                if let Some(Line::Commit(..)) = handle(&line, &mut run) {
                    seen += 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!(
                    "child exited before {kill_after} COMMIT lines: {:?}",
                    child.wait()
                );
            }
            Err(e) => {
                let _ = child.kill();
                panic!("child stalled after {seen} COMMIT lines: {e}");
            }
        }
    }
    if delay_us > 0 {
        std::thread::sleep(Duration::from_micros(delay_us));
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status:?}"
    );
    while let Ok(line) = rx.recv() {
        handle(&line, &mut run);
    }
    reader.join().unwrap();
    run
}

#[derive(Default)]
struct Tally {
    commits_checked: u64,
    lost: u64,
    resumes_checked: u64,
}

#[test]
fn consumer_crash() {
    if std::env::var_os("TIDELOG_CONSUMER_CHILD").is_some() {
        let dir = std::env::var_os("TIDELOG_CONSUMER_DIR").expect("TIDELOG_CONSUMER_DIR");
        let max_poll = env_u64("TIDELOG_CONSUMER_MAX_POLL").unwrap_or(10) as usize;
        child_main(Path::new(&dir), max_poll);
    }
    let iterations = env_u64("TIDELOG_CONSUMER_CRASH_ITERS").unwrap_or(10);
    let seed = env_u64("TIDELOG_CONSUMER_CRASH_SEED").unwrap_or(0xc0ffee);
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    {
        let log = Log::open(&dir, LogConfig::default()).expect("open");
        log.create_topic(TOPIC, topic_config()).expect("create_topic");
        for p in 0..PARTITIONS {
            append(&log, p, N / PARTITIONS as u64);
        }
        log.close().unwrap();
    }

    // The group's committed offset per partition, as last found by the parent.
    let mut known: BTreeMap<u32, Option<u64>> = (0..PARTITIONS).map(|p| (p, None)).collect();
    // The highest COMMIT line ever printed per partition.
    let mut last_printed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut tally = Tally::default();
    for i in 0..iterations {
        let max_poll = 1 + (rng.next() % 20) as usize;
        let kill_after = rng.next() % 61;
        let delay_us = rng.next() % 2000;
        let run = run_child(&dir, max_poll, kill_after, delay_us);
        let ctx = format!(
            "kill {i} (seed {seed:#x}, max_poll {max_poll}, after {kill_after} COMMIT lines + {delay_us} us)"
        );

        // The child saw the commits of the previous runs, and resumed exactly there.
        for p in 0..PARTITIONS {
            assert_eq!(
                run.committed_seen.get(&p).copied().flatten(),
                known[&p],
                "{ctx}: the child's committed({p}) differs from the parent's"
            );
            if let Some(&start) = run.starts.get(&p) {
                assert_eq!(
                    start,
                    known[&p].unwrap_or(0),
                    "{ctx}: partition {p} resumed at {start}, not at the committed offset"
                );
                tally.resumes_checked += 1;
            }
        }
        for &(p, o) in &run.commits {
            let e = last_printed.entry(p).or_insert(0);
            assert!(
                o >= *e,
                "{ctx}: COMMIT {p} {o} after COMMIT {p} {e}: positions go back"
            );
            *e = o;
        }

        // Reopen in-process and check every COMMIT line printed.
        let log = Log::open(&dir, LogConfig::default()).expect("reopen after kill -9");
        let ends = end_offsets(&log);
        let probe = log.consumer(GROUP);
        let mut now: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        for p in 0..PARTITIONS {
            let c = probe.committed(TOPIC, p).expect("committed");
            now.insert(p, c);
            if let Some(c) = c {
                assert!(
                    c <= ends[p as usize],
                    "{ctx}: committed({p}) = {c} past the end {}",
                    ends[p as usize]
                );
            }
            if let Some(prev) = known[&p] {
                assert!(
                    c.is_some_and(|c| c >= prev),
                    "{ctx}: committed({p}) went back from {prev} to {c:?}"
                );
            }
        }
        for &(p, o) in &run.commits {
            tally.commits_checked += 1;
            if now[&p].is_none_or(|c| c < o) {
                eprintln!("{ctx}: LOST: COMMIT {p} {o} printed, committed is {:?}", now[&p]);
                tally.lost += 1;
            }
        }
        drop(probe);
        let mut lag: Vec<(String, u32, Option<u64>, u64, u64)> = log
            .group_lag(GROUP)
            .expect("group_lag")
            .into_iter()
            .map(|l| (l.topic, l.partition, l.committed, l.end_offset, l.lag))
            .collect();
        lag.sort();
        // A group with no member and no commit yet is unknown: no rows. Once it
        // committed on t, every partition of t is listed.
        let want: Vec<(String, u32, Option<u64>, u64, u64)> = if now.values().all(|c| c.is_none()) {
            Vec::new()
        } else {
            (0..PARTITIONS)
                .map(|p| {
                    let end = ends[p as usize];
                    (TOPIC.to_string(), p, now[&p], end, end - now[&p].unwrap_or(0))
                })
                .collect()
        };
        assert_eq!(lag, want, "{ctx}: group_lag");

        // Keep enough unread records for the next child.
        for p in 0..PARTITIONS {
            if ends[p as usize] - now[&p].unwrap_or(0) < LOW_WATER {
                append(&log, p, TOP_UP);
            }
        }
        log.close().expect("close after check");
        assert_eq!(tally.lost, 0, "{ctx}: a returned commit was lost");
        known = now;
    }

    // A fresh consumer of the group resumes exactly at the committed positions.
    let log = Log::open(&dir, LogConfig::default()).expect("final open");
    for p in 0..PARTITIONS {
        append(&log, p, 1); // something to read after every committed position
    }
    let mut c = log.consumer(GROUP);
    c.subscribe(&[TOPIC]).unwrap();
    let mut first: BTreeMap<u32, u64> = BTreeMap::new();
    let mut polls = 0;
    while first.len() < PARTITIONS as usize {
        for r in c.poll(Duration::from_secs(5)).unwrap() {
            assert_eq!(
                r.value().map(|v| v.as_ref()),
                Some(value_of(r.partition(), r.offset()).as_bytes())
            );
            first.entry(r.partition()).or_insert(r.offset());
        }
        polls += 1;
        assert!(polls < 20, "the fresh consumer stalled: {first:?}");
    }
    for p in 0..PARTITIONS {
        assert_eq!(
            first[&p],
            known[&p].unwrap_or(0),
            "the fresh consumer resumes partition {p} at the committed offset"
        );
        tally.resumes_checked += 1;
    }
    drop(c);
    log.close().unwrap();

    let line = format!(
        "RELIABILITY suite=consumer_crash kills={iterations} commits_checked={} lost={} resumes_checked={} \
         committed={:?} seed={seed:#x}",
        tally.commits_checked,
        tally.lost,
        tally.resumes_checked,
        known.values().collect::<Vec<_>>()
    );
    println!("{line}");
    assert_eq!(tally.lost, 0);
    assert!(tally.commits_checked > 0, "no COMMIT line was checked");
}
