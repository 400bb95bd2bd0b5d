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
