//! The offset index `.index`: 8-byte entries (relative offset u32 BE, position
//! u32 BE), offsets and positions strictly rising. An entry (L, p) says: the
//! chunk of batches starting at byte p ends with offset L, so a batch holding
//! any offset > L starts at or after p.

use super::{be_u32, IndexFile};
use crate::error::Result;
use crate::limits::OFFSET_ENTRY_BYTES;
use crate::vfs::Vfs;
use std::path::Path;

/// One decoded offset-index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) offset: u64,
    pub(crate) position: u32,
}

/// The offset index of one segment.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile,
    base_offset: u64,
}

impl OffsetIndex {
    /// Entries that fit in `index_bytes` (Kafka's `segment.index.bytes`).
    pub(crate) fn entries_max(index_bytes: u64) -> usize {
        usize::try_from(index_bytes / OFFSET_ENTRY_BYTES as u64)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    pub(crate) fn create(
        vfs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
        index_bytes: u64,
    ) -> Result<OffsetIndex> {
        let file = IndexFile::create(vfs, path, OFFSET_ENTRY_BYTES, Self::entries_max(index_bytes))?;
        Ok(OffsetIndex { file, base_offset })
    }

    pub(crate) fn open_active(
        vfs: &dyn Vfs,
        path: &Path,
        base_offset: u64,
        index_bytes: u64,
    ) -> Result<OffsetIndex> {
        let file = IndexFile::open_active(vfs, path, OFFSET_ENTRY_BYTES, Self::entries_max(index_bytes))?;
        Ok(OffsetIndex { file, base_offset })
    }

    pub(crate) fn open_sealed(vfs: &dyn Vfs, path: &Path, base_offset: u64) -> Result<OffsetIndex> {
        let file = IndexFile::open_sealed(vfs, path, OFFSET_ENTRY_BYTES)?;
        Ok(OffsetIndex { file, base_offset })
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
    ) -> Result<OffsetIndex> {
        let file = IndexFile::wake(vfs, path, OFFSET_ENTRY_BYTES, d)?;
        Ok(OffsetIndex { file, base_offset })
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

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub(crate) fn get(&self, slot: usize) -> Option<OffsetEntry> {
        let e = self.file.entry(slot)?;
        Some(OffsetEntry {
            offset: self.base_offset + u64::from(be_u32(e, 0)),
            position: be_u32(e, 4),
        })
    }

    pub(crate) fn last(&self) -> Option<OffsetEntry> {
        self.get(self.len().checked_sub(1)?)
    }

    /// Appends (offset, position). Preconditions: not full; both above the last entry's.
    pub(crate) fn append(&mut self, offset: u64, position: u32) -> Result<()> {
        debug_assert!(
            offset >= self.base_offset,
            "offset below the segment's base offset"
        );
        debug_assert!(
            self.last()
                .is_none_or(|l| l.offset < offset && l.position < position),
            "index offsets and positions must rise"
        );
        let relative = u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX);
        let mut entry = [0u8; OFFSET_ENTRY_BYTES];
        entry[..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&entry)
    }

    /// The last entry with offset <= `offset`, if any.
    pub(crate) fn lookup(&self, offset: u64) -> Option<OffsetEntry> {
        let relative = offset.checked_sub(self.base_offset)?;
        let slot = self
            .file
            .last_slot_where(|e| u64::from(be_u32(e, 0)) <= relative)?;
        self.get(slot)
    }

    /// Structural check of every entry of a sealed index against its log:
    /// offsets and positions strictly rising, positions inside the log, offsets
    /// below the segment's next offset. Returns the first bad slot.
    pub(crate) fn check(&self, log_len: u64, next_offset: u64) -> Option<usize> {
        let mut last: Option<OffsetEntry> = None;
        for slot in 0..self.len() {
            let e = self.get(slot)?;
            let rising = last.is_none_or(|l| l.offset < e.offset && l.position < e.position);
            if !rising || u64::from(e.position) >= log_len || e.offset >= next_offset {
                return Some(slot);
            }
            last = Some(e);
        }
        None
    }

    /// Encodes entries for a rebuilt index file.
    pub(crate) fn encode(base_offset: u64, entries: &[OffsetEntry], out: &mut Vec<u8>) {
        for e in entries {
            let relative = u32::try_from(e.offset.saturating_sub(base_offset)).unwrap_or(u32::MAX);
            out.extend_from_slice(&relative.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
    }
}
