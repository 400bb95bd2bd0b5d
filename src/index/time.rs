//! The time index `.timeindex`: 12-byte entries (timestamp i64 BE, relative
//! offset u32 BE). An entry (T, L) says: the largest timestamp of the records up
//! to offset L is T. Timestamps and offsets never fall; an entry is added only
//! when the maximum timestamp grows (Kafka's rule), and the last slot is kept
//! for the entry written when the segment is sealed.

use super::{be_i64, be_u32, IndexFile};
use crate::error::Result;
use crate::limits::TIME_ENTRY_BYTES;
use crate::vfs::Vfs;
use std::path::Path;

/// One decoded time-index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) offset: u64,
}

/// The time index of one segment.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile,
    base_offset: u64,
}

impl TimeIndex {
    pub(crate) fn entries_max(index_bytes: u64) -> usize {
        usize::try_from(index_bytes / TIME_ENTRY_BYTES as u64)
            .unwrap_or(usize::MAX)
            .max(2)
    }

    pub(crate) fn create(
        vfs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
        index_bytes: u64,
    ) -> Result<TimeIndex> {
        let file = IndexFile::create(vfs, path, TIME_ENTRY_BYTES, Self::entries_max(index_bytes))?;
        Ok(TimeIndex { file, base_offset })
    }

    pub(crate) fn open_active(
        vfs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
        index_bytes: u64,
    ) -> Result<TimeIndex> {
        let file = IndexFile::open_active(vfs, path, TIME_ENTRY_BYTES, Self::entries_max(index_bytes))?;
        Ok(TimeIndex { file, base_offset })
    }

    pub(crate) fn open_sealed(vfs: &dyn Vfs, path: &Path, base_offset: u64) -> Result<TimeIndex> {
        let file = IndexFile::open_sealed(vfs, path, TIME_ENTRY_BYTES)?;
        Ok(TimeIndex { file, base_offset })
    }

    /// See [`IndexFile::dormant`].
    pub(crate) fn dormant(&self) -> super::DormantIndex {
        self.file.dormant()
    }

    /// See [`IndexFile::wake`].
    pub(crate) fn wake(
        vfs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
        d: super::DormantIndex,
    ) -> Result<TimeIndex> {
        let file = IndexFile::wake(vfs, path, TIME_ENTRY_BYTES, d)?;
        Ok(TimeIndex { file, base_offset })
    }

    pub(crate) fn file(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn len(&self) -> usize {
        self.file.len()
    }

    /// Whether the file holds a whole number of entries.
    pub(crate) fn has_whole_entries(&self) -> Result<bool> {
        self.file.has_whole_entries()
    }

    /// Full for appends: the last slot is reserved for the sealing entry.
    pub(crate) fn is_full(&self) -> bool {
        self.file.slots_free() <= 1
    }

    pub(crate) fn get(&self, slot: usize) -> Option<TimeEntry> {
        let e = self.file.entry(slot)?;
        Some(TimeEntry {
            timestamp: be_i64(e, 0),
            offset: self.base_offset + u64::from(be_u32(e, 8)),
        })
    }

    pub(crate) fn last(&self) -> Option<TimeEntry> {
        self.get(self.len().checked_sub(1)?)
    }

    /// Appends (timestamp, offset) if `timestamp` is above the last entry's.
    /// `sealing` allows the reserved last slot.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: u64, sealing: bool) -> Result<()> {
        if self.last().is_some_and(|l| l.timestamp >= timestamp) {
            return Ok(());
        }
        if self.file.is_full() || (!sealing && self.is_full()) {
            return Ok(());
        }
        debug_assert!(
            self.last().is_none_or(|l| l.offset <= offset),
            "time index offsets never fall"
        );
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let mut entry = [0u8; TIME_ENTRY_BYTES];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.push(&entry)
    }

    /// The last entry with timestamp <= `timestamp`, if any.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let slot = self.file.last_slot_where(|e| be_i64(e, 0) <= timestamp)?;
        self.get(slot)
    }

    /// Structural check of a sealed time index: timestamps and offsets never
    /// fall, offsets inside the segment. Returns the first bad slot.
    pub(crate) fn check(&self, next_offset: u64) -> Option<usize> {
        let mut last: Option<TimeEntry> = None;
        for slot in 0..self.len() {
            let e = self.get(slot)?;
            let rising = last.is_none_or(|l| l.timestamp <= e.timestamp && l.offset <= e.offset);
            if !rising || e.offset >= next_offset {
                return Some(slot);
            }
            last = Some(e);
        }
        None
    }

    pub(crate) fn encode(base_offset: u64, entries: &[TimeEntry], out: &mut Vec<u8>) {
        for e in entries {
            let relative = u32::try_from(e.offset.saturating_sub(base_offset)).unwrap_or(u32::MAX);
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&relative.to_be_bytes());
        }
    }
}
