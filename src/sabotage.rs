//! Negative controls (RELIABILITY.md §3, "test the tests"): a deliberate
//! breakage of one promise, chosen at run time, so each reliability suite can
//! show that it fails when the promise it checks is broken. A suite that passes
//! under its sabotage checks nothing.
//!
//! Only with the `internals` feature. Without it, [`active`] is a constant
//! `false` and every check compiles away: no cost in a release build.
//!
//! The setting is process-wide and read once from the environment variable
//! `TIDELOG_SABOTAGE` (the names of [`EngineSabotage::name`]). This is the one
//! place tidelog reads its environment, and it exists only for tests: a suite's
//! negative control re-runs the suite's own test binary as a child process with
//! the variable set, so the breakage never reaches tests running beside it.
//! (File-level sabotage of the simulated disk, skipped fsyncs, is set per
//! `SimFs` instead: see `sim.rs`.)

/// One deliberately broken promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineSabotage {
    /// A segment keeps the last appended batch in a user-space buffer and
    /// stores it only at the next append, seal or sync: the send is
    /// acknowledged before its bytes reach the kernel (S1, the kill -9 loop,
    /// must report losses).
    AckBeforeWrite,
    /// Batch CRCs are computed but never compared (S4, the corruption matrix,
    /// must report wrong records).
    IgnoreCrc,
    /// Recovery cuts the log at any invalid batch, synced or not, and readers
    /// never resync past damage (S4 must report collateral loss).
    TruncateAtDamage,
    /// A deleted segment's `.log` is overwritten with zeros before it is
    /// unlinked, while readers may still hold its mapped bytes: what dropping
    /// the segment reference counts would do (S7, the stress suite, must report
    /// changed bytes).
    ReuseDeletedSegments,
}

impl EngineSabotage {
    /// Every sabotage, for parsing and listing.
    pub const ALL: [EngineSabotage; 4] = [
        EngineSabotage::AckBeforeWrite,
        EngineSabotage::IgnoreCrc,
        EngineSabotage::TruncateAtDamage,
        EngineSabotage::ReuseDeletedSegments,
    ];

    /// The value of `TIDELOG_SABOTAGE` that selects it.
    pub fn name(self) -> &'static str {
        match self {
            EngineSabotage::AckBeforeWrite => "ack_before_write",
            EngineSabotage::IgnoreCrc => "ignore_crc",
            EngineSabotage::TruncateAtDamage => "truncate_at_damage",
            EngineSabotage::ReuseDeletedSegments => "reuse_deleted_segments",
        }
    }
}

/// The environment variable that selects a sabotage.
pub const SABOTAGE_ENV: &str = "TIDELOG_SABOTAGE";

/// Whether `sabotage` is in force in this process.
#[cfg(feature = "internals")]
pub(crate) fn active(sabotage: EngineSabotage) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<EngineSabotage>> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let value = std::env::var(SABOTAGE_ENV).ok()?;
        EngineSabotage::ALL.into_iter().find(|s| s.name() == value)
    });
    *chosen == Some(sabotage)
}

/// Whether `sabotage` is in force: never, without the `internals` feature.
#[cfg(not(feature = "internals"))]
#[inline(always)]
pub(crate) const fn active(_sabotage: EngineSabotage) -> bool {
    false
}
