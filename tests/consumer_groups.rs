//! Consumer groups within one `Log` (API.md "Consuming", KAFKA.md §9): members
//! of a group split the subscribed partitions by Kafka's range assignment with
//! members ordered by the time they joined (per topic; P=7, C=3 gives
//! [0,1,2],[3,4],[5,6]); a member owns nothing between `subscribe` and its first
//! `poll`; when a member joins or leaves, partitions taken from a member are
//! revoked at once (`assignment()` stops listing them, and committing or
//! seeking them is `NotAssigned`, before it polls again; `commit()` stores only
//! what it still owns) and new ones arrive at the member's next `poll`; a
//! member leaves at drop, `subscribe(&[])` and `assign`; a new owner resumes
//! from the group's committed position, so nothing is lost across a hand-over
//! (at-least-once, duplicates only after the last commit); groups and topics
//! are independent.
//!
//! Method: fresh `tempfile::tempdir()` logs driven through the public API. Each
//! record's value names its partition and offset, so every record is checked
//! against where it claims to come from, and every record a member returns must
//! come from a partition it owns at that moment. Reads use long `poll` timeouts
//! that return as soon as data is there and exact expected counts; a short
//! (100 ms) timeout appears only where a test expects nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tidelog::{ConsumedRecord, Consumer, Error, Log, LogConfig, Offset, Record, TopicConfig};

const EMPTY: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// helpers

fn open(dir: &Path) -> Log {
    Log::open(dir, LogConfig::default()).expect("open")
}

fn topic(log: &Log, name: &str, partitions: u32) {
    log.create_topic(name, TopicConfig::default().partitions(partitions))
        .expect("create_topic");
}

fn value_of(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}/{partition}/{offset}")
}

fn end_offset(log: &Log, topic: &str, partition: u32) -> u64 {
    log.describe(topic).expect("describe").partitions[partition as usize].end_offset
}

/// Appends `n` records to one partition; each value names its own offset.
fn fill(log: &Log, topic: &str, partition: u32, n: u64) {
    let producer = log.producer();
    let start = end_offset(log, topic, partition);
    for offset in start..start + n {
        let m = producer
            .send_to(topic, partition, Record::new(value_of(topic, partition, offset)))
            .expect("send_to");
        assert_eq!((m.partition, m.offset), (partition, offset));
    }
}

fn fill_all(log: &Log, topic: &str, partitions: u32, n: u64) {
    for p in 0..partitions {
        fill(log, topic, p, n);
    }
}

fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = list.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    v.sort();
    v
}

fn parts(topic: &str, ps: &[u32]) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = ps.iter().map(|p| (topic.to_string(), *p)).collect();
    v.sort();
    v
}

fn mine(c: &Consumer) -> Vec<(String, u32)> {
    let mut v = c.assignment();
    v.sort();
    v
}

/// One poll; every record is checked, and comes from a partition the member owns after the poll.
fn poll_checked(c: &mut Consumer, timeout: Duration) -> Vec<ConsumedRecord> {
    let batch = c.poll(timeout).expect("poll");
    let owned: BTreeSet<(String, u32)> = c.assignment().into_iter().collect();
    for r in &batch {
        let want = value_of(r.topic(), r.partition(), r.offset());
        assert_eq!(
            r.value().map(|v| v.as_ref()),
            Some(want.as_bytes()),
            "record {}/{}/{} has another value",
            r.topic(),
            r.partition(),
            r.offset()
        );
        assert!(
            owned.contains(&(r.topic().to_string(), r.partition())),
            "a member returned {}/{}/{} from a partition it does not own ({owned:?})",
            r.topic(),
            r.partition(),
            r.offset()
        );
    }
    batch
}

/// Polls until exactly the `n` records left for this member arrived.
fn read_n(c: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    let out = read_at_least(c, n);
    assert_eq!(out.len(), n, "more records than this member should get");
    out
}

/// Polls until at least `n` records arrived (panics if the member stalls).
fn read_at_least(c: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let mut empty = 0;
    while out.len() < n {
        let batch = poll_checked(c, WAIT);
        if batch.is_empty() {
            empty += 1;
            assert!(empty < 4, "poll stalled after {} of {n} records", out.len());
        }
        out.extend(batch);
    }
    out
}

fn assert_empty_poll(c: &mut Consumer) {
    let batch = poll_checked(c, EMPTY);
    let got: Vec<(String, u32, u64)> = batch
        .iter()
        .map(|r| (r.topic().to_string(), r.partition(), r.offset()))
        .collect();
    assert!(got.is_empty(), "expected nothing to read, got {got:?}");
}

/// Offsets per (topic, partition), in the order returned.
fn by_partition(recs: &[ConsumedRecord]) -> BTreeMap<(String, u32), Vec<u64>> {
    let mut m: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for r in recs {
        m.entry((r.topic().to_string(), r.partition()))
            .or_default()
            .push(r.offset());
    }
    m
}

fn partitions_of(recs: &[ConsumedRecord]) -> BTreeSet<u32> {
    recs.iter().map(|r| r.partition()).collect()
}

fn not_assigned<T: std::fmt::Debug>(what: &str, r: tidelog::Result<T>) {
    assert!(matches!(r, Err(Error::NotAssigned { .. })), "{what}: {r:?}");
}

// ---------------------------------------------------------------------------
// range assignment and join order

#[test]
fn two_members_split_four_partitions_in_join_order() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 10);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    assert_eq!(mine(&a), vec![], "a member owns nothing before its first poll");
    b.subscribe(&["t"]).unwrap();
    assert_eq!(mine(&b), vec![], "a member owns nothing before its first poll");
    assert_eq!(mine(&a), vec![]);

    let ra = read_n(&mut a, 20);
    assert_eq!(mine(&a), parts("t", &[0, 1]), "the first joiner gets [0,1]");
    assert_eq!(partitions_of(&ra), BTreeSet::from([0, 1]));
    assert_eq!(mine(&b), vec![], "b has not polled yet");
    let rb = read_n(&mut b, 20);
    assert_eq!(mine(&b), parts("t", &[2, 3]), "the second joiner gets [2,3]");
    assert_eq!(partitions_of(&rb), BTreeSet::from([2, 3]));

    // Disjoint and covering.
    let sa: BTreeSet<_> = a.assignment().into_iter().collect();
    let sb: BTreeSet<_> = b.assignment().into_iter().collect();
    assert!(sa.is_disjoint(&sb));
    let all: BTreeSet<_> = sa.union(&sb).cloned().collect();
    assert_eq!(all, parts("t", &[0, 1, 2, 3]).into_iter().collect());
    for (who, recs) in [("a", &ra), ("b", &rb)] {
        for ((_, p), offs) in by_partition(recs) {
            assert_eq!(
                offs,
                (0..10).collect::<Vec<u64>>(),
                "{who}: partition {p} in order"
            );
        }
    }
    assert_empty_poll(&mut a);
    assert_empty_poll(&mut b);
    assert_eq!(
        mine(&a),
        parts("t", &[0, 1]),
        "stable while nobody joins or leaves"
    );
    assert_eq!(mine(&b), parts("t", &[2, 3]));

    // New records go to their owner only.
    fill_all(&log, "t", 4, 1);
    let ra = read_n(&mut a, 2);
    let rb = read_n(&mut b, 2);
    assert_eq!(partitions_of(&ra), BTreeSet::from([0, 1]));
    assert_eq!(partitions_of(&rb), BTreeSet::from([2, 3]));
}

#[test]
fn a_lone_member_owns_everything_until_a_second_one_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 5);

    let mut a = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    read_n(&mut a, 20);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2, 3]));

    let mut b = log.consumer("g");
    b.subscribe(&["t"]).unwrap();
    // Revoked at once, before a polls again; b gets them only at its first poll.
    not_assigned("a commits 2 after b joined", a.commit_offsets(&[("t", 2, 1)]));
    assert_eq!(mine(&b), vec![]);
    assert_empty_poll(&mut a);
    assert_eq!(mine(&a), parts("t", &[0, 1]));
    // Nothing committed: b starts its partitions at auto_offset_reset (Earliest).
    let rb = read_n(&mut b, 10);
    assert_eq!(mine(&b), parts("t", &[2, 3]));
    let per = by_partition(&rb);
    assert_eq!(per[&("t".to_string(), 2)], (0..5).collect::<Vec<u64>>());
    assert_eq!(per[&("t".to_string(), 3)], (0..5).collect::<Vec<u64>>());
}

#[test]
fn three_members_on_seven_partitions_get_three_two_two_by_join_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 7);
    fill_all(&log, "t", 7, 5);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    let mut c = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    c.subscribe(&["t"]).unwrap();
    let ra = read_n(&mut a, 15);
    let rb = read_n(&mut b, 10);
    let rc = read_n(&mut c, 10);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2]));
    assert_eq!(mine(&b), parts("t", &[3, 4]));
    assert_eq!(mine(&c), parts("t", &[5, 6]));
    assert_eq!(partitions_of(&ra), BTreeSet::from([0, 1, 2]));
    assert_eq!(partitions_of(&rb), BTreeSet::from([3, 4]));
    assert_eq!(partitions_of(&rc), BTreeSet::from([5, 6]));
    a.commit().unwrap();
    b.commit().unwrap();
    c.commit().unwrap();

    // b leaves: two members on 7 partitions, a (joined first) gets 4, c gets 3.
    drop(b);
    assert_eq!(mine(&c), parts("t", &[5, 6]), "nothing was taken from c");
    assert_empty_poll(&mut a);
    assert_empty_poll(&mut c);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2, 3]));
    assert_eq!(mine(&c), parts("t", &[4, 5, 6]));

    // A new member joins last (after a and c): a [0,1,2], c [3,4], d [5,6].
    let mut d = log.consumer("g");
    d.subscribe(&["t"]).unwrap();
    assert_eq!(mine(&d), vec![]);
    not_assigned("a commits 3 after d joined", a.commit_offsets(&[("t", 3, 1)]));
    not_assigned("c commits 5 after d joined", c.commit_offsets(&[("t", 5, 1)]));
    assert_empty_poll(&mut a);
    assert_empty_poll(&mut c);
    assert_empty_poll(&mut d);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2]));
    assert_eq!(mine(&c), parts("t", &[3, 4]));
    assert_eq!(mine(&d), parts("t", &[5, 6]));

    // Everything committed before was read; new records reach their owner.
    fill_all(&log, "t", 7, 1);
    assert_eq!(partitions_of(&read_n(&mut a, 3)), BTreeSet::from([0, 1, 2]));
    assert_eq!(partitions_of(&read_n(&mut c, 2)), BTreeSet::from([3, 4]));
    assert_eq!(partitions_of(&read_n(&mut d, 2)), BTreeSet::from([5, 6]));
}

#[test]
fn range_assignment_is_per_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "x", 2);
    topic(&log, "y", 3);
    fill_all(&log, "x", 2, 4);
    fill_all(&log, "y", 3, 4);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["x", "y"]).unwrap();
    b.subscribe(&["x", "y"]).unwrap();
    read_n(&mut a, 12);
    read_n(&mut b, 8);
    // Each topic is ranged on its own (topics are not balanced against each other).
    assert_eq!(mine(&a), pairs(&[("x", 0), ("y", 0), ("y", 1)]));
    assert_eq!(mine(&b), pairs(&[("x", 1), ("y", 2)]));
}

#[test]
fn members_subscribed_to_different_topics_split_each_topic_among_its_subscribers() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "x", 2);
    topic(&log, "y", 2);
    fill_all(&log, "x", 2, 3);
    fill_all(&log, "y", 2, 3);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["x"]).unwrap();
    b.subscribe(&["x", "y"]).unwrap();
    read_n(&mut a, 3);
    read_n(&mut b, 9);
    assert_eq!(mine(&a), pairs(&[("x", 0)]));
    assert_eq!(mine(&b), pairs(&[("x", 1), ("y", 0), ("y", 1)]));
}

// ---------------------------------------------------------------------------
// hand-over

#[test]
fn a_dropped_members_partitions_resume_from_the_committed_position_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    let producer = log.producer();
    for i in 0..100u64 {
        let p = (i % 4) as u32;
        let m = producer
            .send_to("t", p, Record::new(value_of("t", p, i / 4)))
            .unwrap();
        assert_eq!(m.offset, i / 4);
    }

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    a.max_poll_records(10);
    b.max_poll_records(10);

    // a reads some and commits, then reads more without committing.
    let mut a_read = read_at_least(&mut a, 20);
    assert_eq!(mine(&a), parts("t", &[0, 1]));
    a.commit().unwrap();
    let a_committed: BTreeMap<u32, Option<u64>> = (0..2).map(|p| (p, a.committed("t", p).unwrap())).collect();
    for p in 0..2u32 {
        let pos = a.position("t", p).unwrap();
        assert_eq!(
            a_committed[&p],
            Some(pos),
            "commit() stores the position of partition {p}"
        );
    }
    a_read.extend(read_at_least(&mut a, 5)); // read, never committed
                                             // b reads part of its partitions and commits.
    let mut b_read = read_at_least(&mut b, 10);
    assert_eq!(mine(&b), parts("t", &[2, 3]));
    b.commit().unwrap();
    let b_pos: Vec<u64> = (2..4).map(|p| b.position("t", p).unwrap()).collect();

    drop(a);
    assert_eq!(
        mine(&b),
        parts("t", &[2, 3]),
        "new partitions arrive at the next poll"
    );
    let remaining =
        (25 - b_pos[0]) + (25 - b_pos[1]) + (0..2).map(|p| 25 - a_committed[&p].unwrap_or(0)).sum::<u64>();
    let after = read_n(&mut b, remaining as usize);
    assert_eq!(
        mine(&b),
        parts("t", &[0, 1, 2, 3]),
        "b owns everything after a left"
    );
    assert_empty_poll(&mut b);

    let per_b = by_partition(&after);
    for p in 0..2u32 {
        let from = a_committed[&p].unwrap_or(0);
        assert_eq!(
            per_b.get(&("t".to_string(), p)).cloned().unwrap_or_default(),
            (from..25).collect::<Vec<u64>>(),
            "partition {p} taken over from a resumes at the group's commit {from}"
        );
    }
    b_read.extend(after);

    // Nothing lost: every offset of every partition was read by someone.
    let seen_a: BTreeSet<(u32, u64)> = a_read.iter().map(|r| (r.partition(), r.offset())).collect();
    let seen_b: BTreeSet<(u32, u64)> = b_read.iter().map(|r| (r.partition(), r.offset())).collect();
    let all: BTreeSet<(u32, u64)> = (0..4).flat_map(|p| (0..25).map(move |o| (p, o))).collect();
    let union: BTreeSet<(u32, u64)> = seen_a.union(&seen_b).copied().collect();
    assert_eq!(union, all, "no record lost across the hand-over");
    // Duplicates only after a's last commit.
    for &(p, o) in seen_a.intersection(&seen_b) {
        let c = a_committed.get(&p).copied().flatten().unwrap_or(0);
        assert!(o >= c, "{p}/{o} read twice although a had committed up to {c}");
    }
    // Within each member, no record twice.
    assert_eq!(seen_a.len(), a_read.len());
    assert_eq!(seen_b.len(), b_read.len());
}

#[test]
fn revocation_is_immediate() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 10);

    let mut a = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    read_n(&mut a, 40);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2, 3]));
    a.commit_offsets(&[("t", 3, 1)]).unwrap();

    let mut b = log.consumer("g");
    b.subscribe(&["t"]).unwrap();
    // Before a polls again: 2 and 3 are no longer a's.
    not_assigned(
        "commit_offsets of a revoked partition",
        a.commit_offsets(&[("t", 3, 2)]),
    );
    not_assigned("seek of a revoked partition", a.seek("t", 2, Offset::Earliest));
    assert_eq!(
        a.committed("t", 3).unwrap(),
        Some(1),
        "the refused commit changed nothing"
    );
    // commit() stores only what a still owns.
    a.commit().unwrap();
    assert_eq!(a.committed("t", 0).unwrap(), Some(10));
    assert_eq!(a.committed("t", 1).unwrap(), Some(10));
    assert_eq!(
        a.committed("t", 2).unwrap(),
        None,
        "a's position on revoked 2 is not committed"
    );
    assert_eq!(
        a.committed("t", 3).unwrap(),
        Some(1),
        "a's position on revoked 3 is not committed"
    );

    fill_all(&log, "t", 4, 1);
    let ra = read_n(&mut a, 2);
    assert_eq!(partitions_of(&ra), BTreeSet::from([0, 1]));
    // b resumes 2 at the start (no commit) and 3 at the commit 1.
    let rb = read_n(&mut b, 11 + 10);
    let per = by_partition(&rb);
    assert_eq!(per[&("t".to_string(), 2)], (0..11).collect::<Vec<u64>>());
    assert_eq!(per[&("t".to_string(), 3)], (1..11).collect::<Vec<u64>>());
}

#[test]
fn assignment_drops_revoked_partitions_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 2);

    let mut a = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    read_n(&mut a, 8);
    a.commit().unwrap();
    assert_eq!(mine(&a), parts("t", &[0, 1, 2, 3]));
    let mut b = log.consumer("g");
    b.subscribe(&["t"]).unwrap();
    // API.md: partitions taken from a member are revoked at once, so the
    // member's assignment no longer lists them, before it polls again.
    assert_eq!(mine(&a), parts("t", &[0, 1]), "assignment() right after b joined");

    // Once b polled it owns [2,3]; a third joiner takes 3 from b at once.
    assert_empty_poll(&mut b);
    assert_eq!(mine(&b), parts("t", &[2, 3]));
    let mut c = log.consumer("g");
    c.subscribe(&["t"]).unwrap();
    // Three members on 4 partitions: a [0,1], b [2], c [3].
    assert_eq!(mine(&b), parts("t", &[2]), "assignment() right after c joined");
}

#[test]
fn subscribing_to_nothing_leaves_the_group() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 10);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    read_n(&mut a, 20);
    a.commit().unwrap();
    read_n(&mut b, 20);
    b.commit_offsets(&[("t", 2, 5), ("t", 3, 7)]).unwrap();

    b.subscribe(&[]).unwrap();
    assert_eq!(mine(&b), vec![]);
    let r = b.poll(EMPTY);
    assert!(matches!(r, Err(Error::NotSubscribed { .. })), "{r:?}");
    not_assigned("commit after leaving", b.commit_offsets(&[("t", 2, 6)]));

    assert_eq!(
        mine(&a),
        parts("t", &[0, 1]),
        "taken over partitions arrive at a's next poll"
    );
    let ra = read_n(&mut a, 5 + 3);
    assert_eq!(mine(&a), parts("t", &[0, 1, 2, 3]));
    let per = by_partition(&ra);
    assert_eq!(per[&("t".to_string(), 2)], (5..10).collect::<Vec<u64>>());
    assert_eq!(per[&("t".to_string(), 3)], (7..10).collect::<Vec<u64>>());
    a.commit().unwrap();

    // Subscribing again is joining again.
    b.subscribe(&["t"]).unwrap();
    not_assigned("a commits 3 after b rejoined", a.commit_offsets(&[("t", 3, 1)]));
    assert_empty_poll(&mut a);
    assert_eq!(mine(&a), parts("t", &[0, 1]));
    assert_empty_poll(&mut b);
    assert_eq!(mine(&b), parts("t", &[2, 3]));
}

#[test]
fn assigning_leaves_the_group() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 4);
    fill_all(&log, "t", 4, 10);

    let mut a = log.consumer("g");
    let mut b = log.consumer("g");
    a.subscribe(&["t"]).unwrap();
    b.subscribe(&["t"]).unwrap();
    read_n(&mut a, 20);
    read_n(&mut b, 20);
    b.commit().unwrap();
    assert_eq!(mine(&b), parts("t", &[2, 3]));

    b.assign(&[("t", 3)]).unwrap();
    assert_eq!(mine(&b), parts("t", &[3]));
    assert_empty_poll(&mut a);
    assert_eq!(
        mine(&a),
        parts("t", &[0, 1, 2, 3]),
        "b's manual assignment does not count in the group"
    );
    // b's manual partition is read from the group's commit, independently of a.
    fill(&log, "t", 3, 1);
    let rb = read_n(&mut b, 1);
    assert_eq!((rb[0].partition(), rb[0].offset()), (3, 10));
    let ra = read_n(&mut a, 1);
    assert_eq!((ra[0].partition(), ra[0].offset()), (3, 10));
}

// ---------------------------------------------------------------------------
// independence

#[test]
fn groups_and_topics_do_not_affect_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "x", 2);
    topic(&log, "y", 2);
    fill_all(&log, "x", 2, 5);
    fill_all(&log, "y", 2, 5);

    let mut g1a = log.consumer("g1");
    let mut g1b = log.consumer("g1");
    let mut g2 = log.consumer("g2");
    let mut g3 = log.consumer("g3");
    g1a.subscribe(&["x"]).unwrap();
    g2.subscribe(&["x"]).unwrap();
    g1b.subscribe(&["x"]).unwrap();
    g3.subscribe(&["y"]).unwrap();
    read_n(&mut g1a, 5);
    read_n(&mut g1b, 5);
    read_n(&mut g2, 10);
    read_n(&mut g3, 10);
    assert_eq!(mine(&g1a), parts("x", &[0]));
    assert_eq!(mine(&g1b), parts("x", &[1]));
    assert_eq!(
        mine(&g2),
        parts("x", &[0, 1]),
        "g1's members do not share g2's partitions"
    );
    assert_eq!(mine(&g3), parts("y", &[0, 1]));

    assert_eq!(g2.committed("x", 0).unwrap(), None);
    g1a.commit().unwrap();
    g1b.commit().unwrap();
    assert_eq!(g2.committed("x", 0).unwrap(), None, "g1's commit is not g2's");
    g2.commit().unwrap();
    g3.commit().unwrap();
    // Another group commits another value on the same partition.
    let mut g4 = log.consumer("g4");
    g4.assign(&[("x", 0)]).unwrap();
    g4.commit_offsets(&[("x", 0, 2)]).unwrap();
    assert_eq!(g4.committed("x", 0).unwrap(), Some(2));
    assert_eq!(g1a.committed("x", 0).unwrap(), Some(5));
    assert_eq!(g2.committed("x", 0).unwrap(), Some(5));
    assert_eq!(g3.committed("x", 0).unwrap(), None, "g3 never read x");

    // A member of g1 leaves: only g1 rebalances.
    drop(g1b);
    assert_eq!(mine(&g2), parts("x", &[0, 1]));
    assert_eq!(mine(&g3), parts("y", &[0, 1]));
    assert_empty_poll(&mut g1a);
    assert_empty_poll(&mut g2);
    assert_empty_poll(&mut g3);
    assert_eq!(mine(&g1a), parts("x", &[0, 1]));
    assert_eq!(mine(&g2), parts("x", &[0, 1]));
    assert_eq!(mine(&g3), parts("y", &[0, 1]));

    // A second member joining g3 on y does not touch g1 or g2 on x.
    let mut g3b = log.consumer("g3");
    g3b.subscribe(&["y"]).unwrap();
    not_assigned(
        "g3 commits y1 after g3b joined",
        g3.commit_offsets(&[("y", 1, 1)]),
    );
    assert_eq!(mine(&g1a), parts("x", &[0, 1]));
    assert_eq!(mine(&g2), parts("x", &[0, 1]));
    assert_empty_poll(&mut g3b);
    assert_empty_poll(&mut g3);
    assert_eq!(mine(&g3), parts("y", &[0]));
    assert_eq!(mine(&g3b), parts("y", &[1]));

    // Every group still gets the new records of its topics.
    fill_all(&log, "x", 2, 1);
    fill_all(&log, "y", 2, 1);
    assert_eq!(read_n(&mut g1a, 2).len(), 2);
    assert_eq!(read_n(&mut g2, 2).len(), 2);
    assert_eq!(partitions_of(&read_n(&mut g3, 1)), BTreeSet::from([0]));
    assert_eq!(partitions_of(&read_n(&mut g3b, 1)), BTreeSet::from([1]));
}

/// A member that loses a partition and gets it back between two of its polls
/// resumes it from the group's committed position (what the other owner read
/// and committed in between), not from where it had been before.
#[test]
fn a_partition_lost_and_regained_between_polls_resumes_from_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path());
    topic(&log, "t", 2);
    fill_all(&log, "t", 2, 10);
    let mut a = log.consumer("g");
    a.max_poll_records(3);
    a.subscribe(&["t"]).unwrap();
    // A alone owns both partitions and reads a little of each.
    let mut seen_a = Vec::new();
    while by_partition(&seen_a).len() < 2 {
        seen_a.extend(poll_checked(&mut a, WAIT));
    }
    let a_p1_before = by_partition(&seen_a)[&("t".to_string(), 1)].clone();
    assert!(a_p1_before.len() < 10);
    // B joins and takes partition 1, reads it all and commits.
    let mut b = log.consumer("g");
    b.subscribe(&["t"]).unwrap();
    let mut got_b = Vec::new();
    while got_b.len() < 10 {
        got_b.extend(
            poll_checked(&mut b, WAIT)
                .into_iter()
                .filter(|r| r.partition() == 1),
        );
    }
    b.commit().unwrap();
    // B leaves; A gets partition 1 back, without having polled in between.
    drop(b);
    fill(&log, "t", 1, 2);
    let mut after = Vec::new();
    while after
        .iter()
        .filter(|r: &&ConsumedRecord| r.partition() == 1)
        .count()
        < 2
    {
        after.extend(poll_checked(&mut a, WAIT));
    }
    let p1: Vec<u64> = after
        .iter()
        .filter(|r| r.partition() == 1)
        .map(|r| r.offset())
        .collect();
    assert_eq!(p1, vec![10, 11], "A re-read what B had committed, or skipped");
}
