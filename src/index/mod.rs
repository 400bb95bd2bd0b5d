//! Sparse, memory-mapped indexes of a segment: the offset index (`.index`,
//! [`OffsetIndex`]) and the time index (`.timeindex`, [`TimeIndex`]).
//!
//! Both are arrays of fixed-size big-endian entries (KAFKA.md §3). An index is
//! either *active* (its segment is appended to: a writable map over a file whose
//! space is reserved in [`INDEX_GROW_BYTES`] steps, entries counted in memory, so
//! zero bytes past the count are never read as entries) or *sealed* (the file is
//! trimmed to exactly `entries × entry size` and mapped read-only).
//!
//! Indexes are derived data: never trusted over the `.log`. A sealed index that
//! fails [`IndexFile::check`] is rebuilt from the log by the segment.
//!
//! Not thread-safe; the partition's lock serialises access.

mod offset;
mod time;

pub(crate) use offset::{OffsetEntry, OffsetIndex};
pub(crate) use time::{TimeEntry, TimeIndex};

use crate::error::Result;
use crate::limits::INDEX_GROW_BYTES;
use crate::mmap::WriteMap;
use crate::vfs::{Vfs, VfsFile};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Where an active index's entries live.
enum ActiveEntries {
    /// A writable map of `entries_max` entries (stores reach the file directly).
    Mapped(WriteMap),
    /// A filesystem without writable maps: entries are written with
    /// `write_all_at` and mirrored here for lookups.
    Written(Vec<u8>),
}

/// An index without its file open or mapped (see [`IndexFile::dormant`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DormantIndex {
    entries_count: usize,
    entries_max: usize,
    /// `Some`: active, with this many bytes of the file reserved.
    reserved_bytes: Option<u64>,
}

/// One index file: fixed-size entries, appended while active, read-only once sealed.
pub(crate) struct IndexFile {
    file: Arc<dyn VfsFile>,
    entry_bytes: usize,
    entries_count: usize,
    entries_max: usize,
    state: State,
}

enum State {
    /// Entries being appended; `reserved_bytes` of the file are allocated.
    Active {
        entries: ActiveEntries,
        reserved_bytes: u64,
    },
    /// Read-only map of exactly `entries_count` entries.
    Sealed { bytes: Bytes },
}

// Debug never prints mapped bytes.
impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("entry_bytes", &self.entry_bytes)
            .field("entries_count", &self.entries_count)
            .field("entries_max", &self.entries_max)
            .field("sealed", &matches!(self.state, State::Sealed { .. }))
            .finish_non_exhaustive()
    }
}

impl IndexFile {
    /// Creates a new, empty, active index file (`O_EXCL`).
    pub(crate) fn create(
        vfs: &dyn Vfs,
        path: &Path,
        entry_bytes: usize,
        entries_max: usize,
    ) -> Result<IndexFile> {
        let file = vfs.create_new(path)?;
        Self::activate(file, entry_bytes, entries_max, 0)
    }

    /// Opens an existing index file of valid, whole entries as the active index.
    pub(crate) fn open_active(
        vfs: &dyn Vfs,
        path: &Path,
        entry_bytes: usize,
        entries_max: usize,
    ) -> Result<IndexFile> {
        let file = vfs.open(path)?;
        let len = file.len()?;
        let entries_count = usize::try_from(len / entry_bytes as u64)
            .unwrap_or(usize::MAX)
            .min(entries_max);
        // Drop any partial entry or excess beyond the maximum before mapping.
        file.set_len((entries_count * entry_bytes) as u64)?;
        Self::activate(file, entry_bytes, entries_max, entries_count)
    }

    fn activate(
        file: Arc<dyn VfsFile>,
        entry_bytes: usize,
        entries_max: usize,
        entries_count: usize,
    ) -> Result<IndexFile> {
        debug_assert!(
            entries_count <= entries_max,
            "an index never holds more than its maximum"
        );
        let used = (entries_count * entry_bytes) as u64;
        // Reserve the used part (a no-op for a file we wrote ourselves) so every store
        // through the map lands in allocated space.
        if used > 0 {
            file.allocate(used)?;
        }
        let entries = match file.map_write(entries_max * entry_bytes)? {
            Some(map) => ActiveEntries::Mapped(map),
            None => {
                let mut mirror = vec![0u8; usize::try_from(used).unwrap_or(0)];
                file.read_exact_at(&mut mirror, 0)?;
                ActiveEntries::Written(mirror)
            }
        };
        // Stores go through the map; the file is touched again only to grow,
        // trim or fsync it, so no descriptor is held meanwhile.
        let file = match entries {
            ActiveEntries::Mapped(_) => file.detached().unwrap_or(file),
            ActiveEntries::Written(_) => file,
        };
        Ok(IndexFile {
            file,
            entry_bytes,
            entries_count,
            entries_max,
            state: State::Active {
                entries,
                reserved_bytes: used,
            },
        })
    }

    /// Opens an existing index file read-only (a sealed segment's). Entries are
    /// not checked here; call [`IndexFile::check`]-based validation before trusting them.
    pub(crate) fn open_sealed(vfs: &dyn Vfs, path: &Path, entry_bytes: usize) -> Result<IndexFile> {
        let file = vfs.open(path)?;
        let len = file.len()?;
        let entries_count = usize::try_from(len / entry_bytes as u64).unwrap_or(0);
        let bytes = file.map_read(entries_count * entry_bytes)?;
        let file = file.detached().unwrap_or(file);
        Ok(IndexFile {
            file,
            entry_bytes,
            entries_count,
            entries_max: entries_count,
            state: State::Sealed { bytes },
        })
    }

    /// What [`IndexFile::wake`] needs to map this index again without reading
    /// or checking it: the index is dropped (its maps unmapped) meanwhile.
    pub(crate) fn dormant(&self) -> DormantIndex {
        DormantIndex {
            entries_count: self.entries_count,
            entries_max: self.entries_max,
            reserved_bytes: match &self.state {
                State::Active { reserved_bytes, .. } => Some(*reserved_bytes),
                State::Sealed { .. } => None,
            },
        }
    }

    /// Maps an index again from what [`IndexFile::dormant`] recorded; the file
    /// is the one this process wrote, unchanged since.
    pub(crate) fn wake(vfs: &dyn Vfs, path: &Path, entry_bytes: usize, d: DormantIndex) -> Result<IndexFile> {
        let file = vfs.open(path)?;
        match d.reserved_bytes {
            Some(reserved_bytes) => {
                let mut index = Self::activate(file, entry_bytes, d.entries_max, d.entries_count)?;
                if let State::Active {
                    reserved_bytes: r, ..
                } = &mut index.state
                {
                    *r = reserved_bytes.max(*r);
                }
                Ok(index)
            }
            None => {
                let bytes = file.map_read(d.entries_count * entry_bytes)?;
                let file = file.detached().unwrap_or(file);
                Ok(IndexFile {
                    file,
                    entry_bytes,
                    entries_count: d.entries_count,
                    entries_max: d.entries_max,
                    state: State::Sealed { bytes },
                })
            }
        }
    }

    /// Whether the file's length is a whole number of entries (a sealed index).
    pub(crate) fn has_whole_entries(&self) -> Result<bool> {
        Ok(self.file.len()? % self.entry_bytes as u64 == 0)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries_count
    }

    /// Whether the index has reached its maximum number of entries.
    pub(crate) fn is_full(&self) -> bool {
        self.entries_count >= self.entries_max
    }

    /// Free entry slots.
    pub(crate) fn slots_free(&self) -> usize {
        self.entries_max.saturating_sub(self.entries_count)
    }

    /// The bytes of entry `slot`, if it exists.
    fn entry(&self, slot: usize) -> Option<&[u8]> {
        if slot >= self.entries_count {
            return None;
        }
        let start = slot * self.entry_bytes;
        let all: &[u8] = match &self.state {
            State::Active {
                entries: ActiveEntries::Mapped(map),
                ..
            } => map.bytes(),
            State::Active {
                entries: ActiveEntries::Written(mirror),
                ..
            } => mirror,
            State::Sealed { bytes } => bytes,
        };
        all.get(start..start + self.entry_bytes)
    }

    /// Appends one encoded entry. Precondition: the index is active and not full.
    fn push(&mut self, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len(), self.entry_bytes, "entry of the wrong size");
        assert!(!self.is_full(), "segment must roll before its index fills");
        let State::Active {
            entries,
            reserved_bytes,
        } = &mut self.state
        else {
            unreachable!("append to a sealed index");
        };
        let start = self.entries_count * self.entry_bytes;
        let end = (start + self.entry_bytes) as u64;
        if end > *reserved_bytes {
            let capacity = (self.entries_max * self.entry_bytes) as u64;
            let grown = (*reserved_bytes + INDEX_GROW_BYTES).min(capacity).max(end);
            self.file.allocate(grown)?;
            *reserved_bytes = grown;
        }
        match entries {
            ActiveEntries::Mapped(map) => {
                let Some(slot) = map.bytes_mut().get_mut(start..start + self.entry_bytes) else {
                    unreachable!("the map covers entries_max entries");
                };
                slot.copy_from_slice(entry);
            }
            ActiveEntries::Written(mirror) => {
                self.file.write_all_at(entry, start as u64)?;
                mirror.extend_from_slice(entry);
            }
        }
        self.entries_count += 1;
        Ok(())
    }

    /// Seals the index: unmaps it, trims the file to its entries, fsyncs it and
    /// maps it read-only. A no-op for a sealed index.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if matches!(self.state, State::Sealed { .. }) {
            return Ok(());
        }
        let used = self.entries_count * self.entry_bytes;
        // Drop the writable map before trimming (never cut a file under a live map).
        self.state = State::Sealed { bytes: Bytes::new() };
        self.file.set_len(used as u64)?;
        self.file.sync_data()?;
        let bytes = self.file.map_read(used)?;
        self.state = State::Sealed { bytes };
        self.entries_max = self.entries_count;
        Ok(())
    }

    /// Trims the file to its entries and fsyncs it, keeping the index active (at
    /// a clean close of the active segment).
    pub(crate) fn trim_and_sync(&mut self) -> Result<()> {
        if let State::Active { reserved_bytes, .. } = &mut self.state {
            let used = (self.entries_count * self.entry_bytes) as u64;
            self.file.set_len(used)?;
            *reserved_bytes = used;
        }
        self.file.sync_data()
    }

    /// Binary search: the last slot whose entry satisfies `le(entry)` (entries for
    /// which `le` holds form a prefix).
    fn last_slot_where(&self, le: impl Fn(&[u8]) -> bool) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if le(e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
    }
}

/// Writes fully-built index bytes to `path` by atomic replace (a rebuilt index
/// never passes through a half-written state, RELIABILITY.md §2.5).
pub(crate) fn write_rebuilt(vfs: &dyn Vfs, path: &Path, bytes: &[u8], nonce: u64) -> Result<()> {
    crate::vfs::atomic_replace(vfs, path, bytes, nonce)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_be_bytes(b)
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    i64::from_be_bytes(b)
}
