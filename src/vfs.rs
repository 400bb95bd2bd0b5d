//! The one narrow interface through which tidelog touches files.
//!
//! Every open, write, sync, rename, truncate, directory sync and map of the
//! engine goes through [`Vfs`] and [`VfsFile`], so fault-injecting and
//! power-cut-simulating implementations can replace [`RealFs`] in tests without
//! touching the engine. Calls are dynamically dispatched; each one wraps a system
//! call that costs far more than the indirect call.
//!
//! Every error names the path it was about ([`Error::Io`]).

use crate::error::{Error, Result};
use crate::mmap::{self, WriteMap};
use bytes::Bytes;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A filesystem.
pub trait Vfs: Send + Sync + Debug {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> Result<Arc<dyn VfsFile>>;
    /// Creates a file that must not exist yet (`O_EXCL`), for reading and writing.
    fn create_new(&self, path: &Path) -> Result<Arc<dyn VfsFile>>;
    /// Renames `from` to `to`, atomically replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> Result<()>;
    /// Takes an exclusive, non-blocking lock on the file at `path` (created if
    /// missing), held until the returned guard drops. `Ok(None)`: held elsewhere.
    fn lock(&self, path: &Path) -> Result<Option<LockGuard>>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Makes the directory's entries (creates, renames, unlinks) durable.
    fn sync_dir(&self, path: &Path) -> Result<()>;
    /// The names of the entries of a directory, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> Result<Vec<u8>>;
}

/// An open file.
pub trait VfsFile: Send + Sync + Debug {
    /// The path it was opened at.
    fn path(&self) -> &Path;
    /// Reads exactly `buf.len()` bytes at `position`.
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()>;
    /// Writes all of `buf` at `position`.
    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<()>;
    /// Reserves disk space for the first `len` bytes, extending the file to at
    /// least `len`; fails with `ENOSPC` rather than later.
    fn allocate(&self, len: u64) -> Result<()>;
    /// Makes the file's data (and the metadata needed to read it) durable.
    fn sync_data(&self) -> Result<()>;
    /// The file's length.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// A read-only map of the first `len` bytes, which may run past the end of
    /// the file (bytes past the end must never be touched).
    fn map_read(&self, len: usize) -> Result<Bytes>;
    /// A writable map of the first `len` bytes; stores go only into allocated
    /// space. `None`: this filesystem has no shared writable maps (a simulated
    /// one), and the caller writes with [`VfsFile::write_all_at`] instead.
    fn map_write(&self, len: usize) -> Result<Option<WriteMap>>;
    /// The same file without a held descriptor: each call reopens it by path.
    /// For files touched rarely once mapped (sealed segments, index files), so
    /// that an idle partition holds no descriptors. `None`: keep this handle
    /// (a simulated filesystem holds no descriptors). The path must keep
    /// naming this file for as long as the detached handle is used.
    fn detached(&self) -> Option<Arc<dyn VfsFile>> {
        None
    }
}

/// An exclusive lock on a file, released when dropped.
pub struct LockGuard {
    _held: Box<dyn Send + Sync>,
}

impl LockGuard {
    /// A guard that holds `held` (an open, locked file, or a simulated lock
    /// whose `Drop` releases it) until the guard drops.
    pub fn new(held: impl Send + Sync + 'static) -> LockGuard {
        LockGuard {
            _held: Box::new(held),
        }
    }
}

impl Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// The real filesystem, through `std` and `libc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    /// A shared handle to the real filesystem.
    pub fn shared() -> Arc<dyn Vfs> {
        Arc::new(RealFs)
    }
}

#[derive(Debug)]
struct RealFile {
    path: PathBuf,
    file: File,
}

impl Vfs for RealFs {
    fn open(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io_at(path))?;
        Ok(Arc::new(RealFile {
            path: path.to_owned(),
            file,
        }))
    }

    fn create_new(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(Error::io_at(path))?;
        Ok(Arc::new(RealFile {
            path: path.to_owned(),
            file,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(Error::io_at(from))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(Error::io_at(path))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        fs::remove_dir_all(path).map_err(Error::io_at(path))
    }

    fn lock(&self, path: &Path) -> Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io_at(path))?;
        // flock: per open file description, so a second open in this process
        // conflicts too; the kernel drops it when the holder dies.
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard::new(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).map_err(Error::io_at(path))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let dir = File::open(path).map_err(Error::io_at(path))?;
        dir.sync_all().map_err(Error::io_at(path))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::io_at(dir))? {
            let entry = entry.map_err(Error::io_at(dir))?;
            // Names that are not UTF-8 are never ours; skip them.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists().map_err(Error::io_at(path))
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        fs::read(path).map_err(Error::io_at(path))
    }
}

impl VfsFile for RealFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, position)
            .map_err(Error::io_at(&self.path))
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        self.file
            .write_all_at(buf, position)
            .map_err(Error::io_at(&self.path))
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(Error::io_at(&self.path))
    }

    fn allocate(&self, len: u64) -> Result<()> {
        mmap::allocate(&self.file, len).map_err(Error::io_at(&self.path))
    }

    fn sync_data(&self) -> Result<()> {
        #[cfg(target_os = "macos")]
        {
            // fsync on macOS does not reach stable storage; F_FULLFSYNC does.
            mmap::full_fsync(&self.file).map_err(Error::io_at(&self.path))
        }
        #[cfg(not(target_os = "macos"))]
        {
            self.file.sync_data().map_err(Error::io_at(&self.path))
        }
    }

    fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(Error::io_at(&self.path))?.len())
    }

    fn map_read(&self, len: usize) -> Result<Bytes> {
        mmap::map_read(&self.file, len).map_err(Error::io_at(&self.path))
    }

    fn map_write(&self, len: usize) -> Result<Option<WriteMap>> {
        WriteMap::new(&self.file, len)
            .map(Some)
            .map_err(Error::io_at(&self.path))
    }

    fn detached(&self) -> Option<Arc<dyn VfsFile>> {
        Some(Arc::new(DetachedFile {
            path: self.path.clone(),
        }))
    }
}

impl RealFile {
    fn reopen(path: &Path) -> Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io_at(path))?;
        Ok(RealFile {
            path: path.to_owned(),
            file,
        })
    }
}

/// A [`RealFile`] that holds no descriptor: every call opens the file by path
/// (one `open` and `close` around the real call). Maps made from it outlive
/// the descriptor, as maps do.
#[derive(Debug)]
struct DetachedFile {
    path: PathBuf,
}

impl VfsFile for DetachedFile {
    fn path(&self) -> &Path {
        &self.path
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        RealFile::reopen(&self.path)?.read_exact_at(buf, position)
    }
    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        RealFile::reopen(&self.path)?.write_all_at(buf, position)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        RealFile::reopen(&self.path)?.set_len(len)
    }
    fn allocate(&self, len: u64) -> Result<()> {
        RealFile::reopen(&self.path)?.allocate(len)
    }
    fn sync_data(&self) -> Result<()> {
        // fsync reaches every dirty page of the file, whichever descriptor
        // (or map) wrote it.
        RealFile::reopen(&self.path)?.sync_data()
    }
    fn len(&self) -> Result<u64> {
        RealFile::reopen(&self.path)?.len()
    }
    fn map_read(&self, len: usize) -> Result<Bytes> {
        RealFile::reopen(&self.path)?.map_read(len)
    }
    fn map_write(&self, len: usize) -> Result<Option<WriteMap>> {
        RealFile::reopen(&self.path)?.map_write(len)
    }
    fn detached(&self) -> Option<Arc<dyn VfsFile>> {
        Some(Arc::new(DetachedFile {
            path: self.path.clone(),
        }))
    }
}

/// Writes `bytes` to `path` by atomic replace: a fresh temp file (O_EXCL),
/// fsynced, renamed over `path`, then the directory fsynced.
pub(crate) fn atomic_replace(vfs: &dyn Vfs, path: &Path, bytes: &[u8], nonce: u64) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tidelog");
    let tmp = dir.join(format!("{name}{TMP_MARK}{nonce:016x}"));
    let file = vfs.create_new(&tmp)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    vfs.rename(&tmp, path)?;
    vfs.sync_dir(dir)
}

/// Marker in the names of temp files written by [`atomic_replace`]; open deletes them.
pub(crate) const TMP_MARK: &str = ".tmp-";

/// Creates `path` and its missing parents so that they survive a power cut:
/// each new directory's parent is fsynced after it is made (RELIABILITY.md
/// §2.1: a mkdir is durable only once its parent directory is synced).
pub(crate) fn create_dir_durable(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for dir in path.ancestors() {
        if dir.as_os_str().is_empty() || vfs.exists(dir)? {
            break;
        }
        missing.push(dir);
    }
    if missing.is_empty() {
        return Ok(());
    }
    vfs.create_dir_all(path)?;
    for dir in missing.iter().rev() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            vfs.sync_dir(parent)?;
        }
    }
    Ok(())
}
