//! In-process consumer groups: membership in join order, subscriptions, and
//! Kafka's range assignment (KAFKA.md §9 rule 5). Every join, leave or
//! subscription change starts a new generation; members pick up their new
//! assignment at their next poll, and lose revoked partitions at once (their
//! ownership is checked against the current generation).
//!
//! Thread-safety: one `Mutex` over every group; held only for bookkeeping.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A member's id, unique within a `Log`.
pub(crate) type MemberId = u64;

#[derive(Debug, Default)]
struct Group {
    /// Members in join order, with their subscribed topics.
    members: Vec<(MemberId, Vec<String>)>,
    generation: u64,
    assignment: HashMap<MemberId, Vec<(String, u32)>>,
    /// Per partition: its owner and the generation it has owned it since.
    owned_since: HashMap<(String, u32), (MemberId, u64)>,
}

/// Every group of a log.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
}

/// Kafka's range assignment for one topic: `members` in order, `partitions`
/// of the topic; member i gets a contiguous run of q (+1 for the first r).
pub(crate) fn range_assign(members: usize, partitions: u32) -> Vec<std::ops::Range<u32>> {
    if members == 0 {
        return Vec::new();
    }
    let c = members as u32;
    let (q, r) = (partitions / c, partitions % c);
    (0..c)
        .map(|i| {
            let start = i * q + i.min(r);
            start..start + q + u32::from(i < r)
        })
        .collect()
}

impl Groups {
    pub(crate) fn new_member(&self) -> MemberId {
        self.next_member.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Joins (or changes the subscription of) `member`; rebalances.
    pub(crate) fn join(
        &self,
        group: &str,
        member: MemberId,
        topics: Vec<String>,
        partitions: &dyn Fn(&str) -> u32,
    ) {
        let mut groups = self.groups.lock();
        let g = groups.entry(group.to_owned()).or_default();
        match g.members.iter_mut().find(|(m, _)| *m == member) {
            Some((_, subs)) => *subs = topics,
            None => g.members.push((member, topics)),
        }
        rebalance(g, partitions);
        crate::observe::rebalanced(group, g.generation, g.members.len());
    }

    /// Removes `member` from `group` (if it was there); rebalances.
    pub(crate) fn leave(&self, group: &str, member: MemberId, partitions: &dyn Fn(&str) -> u32) {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get_mut(group) {
            let before = g.members.len();
            g.members.retain(|(m, _)| *m != member);
            if g.members.len() != before {
                rebalance(g, partitions);
                crate::observe::rebalanced(group, g.generation, g.members.len());
            }
            if g.members.is_empty() {
                groups.remove(group);
            }
        }
    }

    /// The current generation and `member`'s assignment in it, each
    /// partition with the generation since which `member` has owned it
    /// without a break (a partition lost and regained counts from the regain).
    pub(crate) fn assignment(&self, group: &str, member: MemberId) -> (u64, Vec<(String, u32, u64)>) {
        let groups = self.groups.lock();
        groups.get(group).map_or((0, Vec::new()), |g| {
            let list = g.assignment.get(&member).map(Vec::as_slice).unwrap_or_default();
            let with_since = list
                .iter()
                .map(|(t, p)| {
                    let since = g
                        .owned_since
                        .get(&(t.clone(), *p))
                        .map_or(g.generation, |(_, since)| *since);
                    (t.clone(), *p, since)
                })
                .collect();
            (g.generation, with_since)
        })
    }

    /// Whether `member` owns the partition in the current generation.
    pub(crate) fn owns(&self, group: &str, member: MemberId, topic: &str, partition: u32) -> bool {
        let groups = self.groups.lock();
        groups.get(group).is_some_and(|g| {
            g.assignment
                .get(&member)
                .is_some_and(|a| a.iter().any(|(t, p)| t == topic && *p == partition))
        })
    }

    /// Topics any member of `group` is subscribed to.
    pub(crate) fn subscribed_topics(&self, group: &str) -> Vec<String> {
        let groups = self.groups.lock();
        let mut v: Vec<String> = groups
            .get(group)
            .map(|g| g.members.iter().flat_map(|(_, t)| t.iter().cloned()).collect())
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    }
}

fn rebalance(g: &mut Group, partitions: &dyn Fn(&str) -> u32) {
    g.generation += 1;
    g.assignment.clear();
    let mut topics: Vec<&String> = g.members.iter().flat_map(|(_, t)| t.iter()).collect();
    topics.sort();
    topics.dedup();
    let mut since = HashMap::new();
    for topic in topics {
        let members: Vec<MemberId> = g
            .members
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| *m)
            .collect();
        for (m, range) in members.iter().zip(range_assign(members.len(), partitions(topic))) {
            let list = g.assignment.entry(*m).or_default();
            for p in range {
                let key = (topic.clone(), p);
                let kept = match g.owned_since.get(&key) {
                    Some((owner, from)) if owner == m => *from,
                    _ => g.generation,
                };
                since.insert(key.clone(), (*m, kept));
                list.push(key);
            }
        }
    }
    g.owned_since = since;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_matches_kafka() {
        assert_eq!(range_assign(3, 7), vec![0..3, 3..5, 5..7]);
        assert_eq!(range_assign(2, 4), vec![0..2, 2..4]);
        assert_eq!(range_assign(4, 2), vec![0..1, 1..2, 2..2, 2..2]);
        assert_eq!(range_assign(1, 5), vec![0..5]);
    }
}
