//! The only `unsafe` code in tidelog: memory maps of segment and index files
//! (and one read of the process's descriptor limit).
//!
//! Rules that make every map here sound (RELIABILITY.md §2.7):
//! 1. The log directory is locked, so no other tidelog process changes its files.
//! 2. A file is never truncated below a byte that a reader may touch: readers stop
//!    at a segment's published end, and only the unpublished tail of the active
//!    segment (after a failed write) or a file not yet mapped (at open) is cut.
//! 3. A read map may extend past the end of the file (the active segment grows
//!    into it), but nothing reads past the published end, which is always within
//!    the file.
//! 4. Stores through a write map (an active segment's `.log` or an active
//!    index) land only in space reserved with `posix_fallocate`, so a full disk
//!    is an `ENOSPC` from the reservation and never a SIGBUS from a page fault;
//!    a write map is dropped before its file is trimmed.
//!
//! Maps are unmapped when their last owner drops. A `Bytes` handed to a reader
//! owns its map, so the bytes stay valid even after the file is unlinked.
#![allow(unsafe_code)]

use bytes::Bytes;
use std::fs::File;
use std::io;

/// A read-only shared map of `len` bytes of `file`, as `Bytes` that own the map.
///
/// `len` may exceed the file's current length (rule 3). A zero `len` gives empty
/// `Bytes` without a map.
pub(crate) fn map_read(file: &File, len: usize) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: rules 1-3 of the module doc: no other process writes these files,
    // nothing is truncated below the published end while mapped, and readers of
    // the returned bytes only touch bytes below that end, which lie within the file.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }?;
    Ok(Bytes::from_owner(map))
}

/// A writable shared map over the first `len` bytes of an index or active log file.
#[derive(Debug)]
pub struct WriteMap {
    map: memmap2::MmapMut,
}

impl WriteMap {
    /// Maps `len` bytes of `file` for writing. The caller stores only into bytes
    /// reserved with `posix_fallocate` (rule 4).
    pub(crate) fn new(file: &File, len: usize) -> io::Result<WriteMap> {
        // SAFETY: rules 1, 2 and 4: the directory lock keeps other processes out,
        // the file is truncated only after this map is dropped, and stores are made
        // only below the reserved (allocated) length its owner (index or segment)
        // tracks; bytes stored past a reader's published end are never read by it.
        let map = unsafe { memmap2::MmapOptions::new().len(len.max(1)).map_mut(file) }?;
        Ok(WriteMap { map })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// Reserves disk space for the first `len` bytes of `file` (`posix_fallocate`),
/// extending it to at least `len`. Fails with `ENOSPC` now rather than SIGBUS later.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "allocation length overflows off_t"))?;
    loop {
        // SAFETY: posix_fallocate reads only its integer arguments; the descriptor
        // belongs to `file`, which outlives the call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        // posix_fallocate returns the error number instead of setting errno.
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            _ => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

/// `fcntl(F_FULLFSYNC)`: on macOS, `fsync` does not reach stable storage.
#[cfg(target_os = "macos")]
pub(crate) fn full_fsync(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(F_FULLFSYNC) takes an open descriptor, owned by `file`, and no pointers.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_FULLFSYNC) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The process's soft limit on open file descriptors (1,024 if unknown).
pub(crate) fn fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a
    // local and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return 1024;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}
