//! The `tidelog` binary, run as a user runs it: on a log written through the
//! library, every command's output and exit status; `verify` and `dump` on
//! a damaged segment; errors as one line with status 2.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use tidelog::{Log, LogConfig, Record, TopicConfig};

fn tidelog(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A log with topic `orders` (2 partitions, 20 keyed records) and a group
/// `billing` that committed partition 0 at 5.
fn fixture(dir: &Path) {
    let log = Log::open(dir, LogConfig::default().maintenance_interval(None)).unwrap();
    log.create_topic("orders", TopicConfig::default().partitions(2))
        .unwrap();
    let p = log.producer();
    for i in 0..20 {
        p.send_to(
            "orders",
            i % 2,
            Record::new(format!("order {i}")).with_key(format!("k{i}")),
        )
        .unwrap();
    }
    let mut c = log.consumer("billing");
    c.assign(&[("orders", 0)]).unwrap();
    c.commit_offsets(&[("orders", 0, 5)]).unwrap();
    log.close().unwrap();
}

#[test]
fn commands_on_a_healthy_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    fixture(tmp.path());

    let o = tidelog(&["topics", dir], None);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("orders\t2 partitions"), "{}", stdout(&o));

    let o = tidelog(&["describe", dir, "orders"], None);
    assert!(o.status.success());
    assert!(stdout(&o).contains("0\t0\t10\t1\t"), "{}", stdout(&o));

    let o = tidelog(&["tail", dir, "orders", "-p", "1", "-n", "2"], None);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "orders-1@8\tk17\torder 17\norders-1@9\tk19\torder 19\n"
    );

    let o = tidelog(&["groups", dir], None);
    assert_eq!(stdout(&o), "billing\n");
    let o = tidelog(&["lag", dir, "billing"], None);
    assert!(stdout(&o).contains("orders\t0\t5\t10\t5"), "{}", stdout(&o));

    let o = tidelog(&["verify", dir], None);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("records: clean\n"), "{}", stdout(&o));

    // dump --json: one line per batch and per record, the records' own values.
    let seg = tmp.path().join("orders-0/00000000000000000000.log");
    let o = tidelog(&["dump", seg.to_str().unwrap(), "--records", "--json"], None);
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values: Vec<&str> = lines.iter().filter_map(|l| l["value"].as_str()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("order {}", 2 * i)).collect();
    assert_eq!(values, want);
    assert!(lines
        .iter()
        .filter(|l| l.get("crc").is_some())
        .all(|l| l["valid"] == true));
}

#[test]
fn produce_reads_lines_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    fixture(tmp.path());
    let o = tidelog(
        &["produce", dir, "events", "--create"],
        Some("a\tfirst\nsecond\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tidelog(&["tail", dir, "events"], None);
    assert_eq!(stdout(&o), "events-0@0\ta\tfirst\nevents-0@1\t-\tsecond\n");
}

#[test]
fn damage_is_found_and_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    fixture(tmp.path());
    let seg = tmp.path().join("orders-1/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[70] ^= 0x01; // inside the first batch's records
    std::fs::write(&seg, bytes).unwrap();

    let o = tidelog(&["verify", dir], None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("orders-1/00000000000000000000.log: batch at position 0: "),
        "{out}"
    );
    assert!(out.contains("CRC"), "{out}");

    let o = tidelog(&["dump", seg.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).lines().next().unwrap().contains("INVALID"),
        "{}",
        stdout(&o)
    );

    for args in [
        vec!["describe", dir, "nosuch"],
        vec!["topics", "/nonexistent/tidelog"],
        vec!["dump", "/nonexistent.log"],
    ] {
        let o = tidelog(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("tidelog: ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn maintain_previews_and_applies_retention_and_reindex_rebuilds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    {
        let log = Log::open(tmp.path(), LogConfig::default().maintenance_interval(None)).unwrap();
        log.create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(1024)
                .retention_bytes(Some(2048)),
        )
        .unwrap();
        let p = log.producer();
        for i in 0..100 {
            p.send("t", Record::new(format!("{i:0>100}"))).unwrap();
        }
        log.close().unwrap();
    }
    let o = tidelog(&["maintain", dir, "--dry-run"], None);
    assert!(o.status.success());
    let preview = stdout(&o);
    let line = preview.lines().nth(1).expect("a partition to delete from");
    assert!(line.starts_with("t\t0\t"), "{preview}");
    let segments: u64 = line.split('\t').nth(2).unwrap().parse().unwrap();
    assert!(segments > 0);
    // The dry run deleted nothing; the real pass deletes what it announced.
    let o = tidelog(&["maintain", dir], None);
    assert!(
        stdout(&o).starts_with(&format!("segments deleted {segments},")),
        "{}",
        stdout(&o)
    );
    let o = tidelog(&["maintain", dir, "--dry-run"], None);
    assert_eq!(
        stdout(&o).lines().count(),
        1,
        "nothing left to delete: {}",
        stdout(&o)
    );

    let o = tidelog(&["reindex", dir], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).starts_with("rebuilt "), "{}", stdout(&o));
    let rebuilt: usize = stdout(&o).split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rebuilt > 0);
    let indexes = std::fs::read_dir(tmp.path().join("t-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "timeindex")
        })
        .count();
    let logs = std::fs::read_dir(tmp.path().join("t-0"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    assert_eq!(indexes, logs, "every segment has its time index again");
    let o = tidelog(&["verify", dir], None);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = tidelog(&["tail", dir, "t", "-n", "1"], None);
    assert_eq!(stdout(&o), format!("t-0@99\t-\t{:0>100}\n", 99));
}
