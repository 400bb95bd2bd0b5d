#![cfg(feature = "internals")]
//! A failed fsync is never retried and never acknowledged (RELIABILITY.md §2.2):
//! with `Durability::Always`, the send whose fsync fails gets the error, its
//! partition is fenced (every later send there is `Error::Fenced`, readers see
//! nothing past the last successful fsync), other partitions keep working, and
//! a reopen (which re-reads the disk) serves again.
//!
//! Method: a `Vfs` wrapper over the real filesystem that fails `sync_data` of
//! one partition's `.log` files on command; everything else passes through.

use bytes::Bytes;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tidelog::internals::{open_log_with_vfs, LockGuard, RealFs, Vfs, VfsFile, WriteMap};
use tidelog::{Durability, Error, LogConfig, Record, Result, TopicConfig};

#[derive(Debug)]
struct FailingFs {
    fail_sync_in: &'static str,
    armed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct FailingFile {
    inner: Arc<dyn VfsFile>,
    fail: bool,
    armed: Arc<AtomicBool>,
}

impl FailingFs {
    fn wrap(&self, path: &Path, f: Arc<dyn VfsFile>) -> Arc<dyn VfsFile> {
        let fail = path.to_string_lossy().contains(self.fail_sync_in)
            && path.extension().is_some_and(|e| e == "log");
        Arc::new(FailingFile {
            inner: f,
            fail,
            armed: self.armed.clone(),
        })
    }
}

impl Vfs for FailingFs {
    fn open(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(path, RealFs.open(path)?))
    }
    fn create_new(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        Ok(self.wrap(path, RealFs.create_new(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        RealFs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        RealFs.remove(path)
    }
    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        RealFs.remove_dir_all(path)
    }
    fn lock(&self, path: &Path) -> Result<Option<LockGuard>> {
        RealFs.lock(path)
    }
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        RealFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> Result<()> {
        RealFs.sync_dir(path)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        RealFs.list(dir)
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        RealFs.exists(path)
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        RealFs.read(path)
    }
}

impl VfsFile for FailingFile {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.inner.read_exact_at(buf, position)
    }
    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        self.inner.write_all_at(buf, position)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> Result<()> {
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> Result<()> {
        if self.fail && self.armed.load(Ordering::SeqCst) {
            return Err(Error::Io {
                path: self.inner.path().to_owned(),
                source: std::io::Error::from_raw_os_error(5), // EIO
            });
        }
        self.inner.sync_data()
    }
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn map_read(&self, len: usize) -> Result<Bytes> {
        self.inner.map_read(len)
    }
    fn map_write(&self, len: usize) -> Result<Option<WriteMap>> {
        self.inner.map_write(len)
    }
}

#[test]
fn failed_fsync_fences_only_its_partition_and_is_never_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let vfs = Arc::new(FailingFs {
        fail_sync_in: "t-0",
        armed: armed.clone(),
    });
    let config = LogConfig::default()
        .durability(Durability::Always)
        .maintenance_interval(None);
    let log = open_log_with_vfs(vfs, tmp.path(), config.clone()).unwrap();
    log.create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = log.producer();
    for i in 0..3 {
        producer.send_to("t", 0, Record::new(format!("ok-{i}"))).unwrap();
    }
    armed.store(true, Ordering::SeqCst);
    // The send whose fsync fails gets the I/O error, naming the file.
    match producer.send_to("t", 0, Record::new("lost")) {
        Err(Error::Io { path, .. }) => assert!(path.to_string_lossy().contains("t-0")),
        other => panic!("expected Io from the failed fsync, got {other:?}"),
    }
    // The partition is fenced: later sends fail at once, even with the disk healthy again.
    armed.store(false, Ordering::SeqCst);
    assert!(matches!(
        producer.send_to("t", 0, Record::new("later")),
        Err(Error::Fenced { .. })
    ));
    // Readers see nothing past the last successful fsync.
    let seen = log.fetch("t", 0, 0, 100).unwrap();
    assert_eq!(seen.len(), 3);
    // Other partitions keep working.
    producer.send_to("t", 1, Record::new("other")).unwrap();
    assert_eq!(log.fetch("t", 1, 0, 10).unwrap().len(), 1);
    drop(producer);
    let _ = log.close();
    drop(log);
    // A reopen re-reads the disk and serves the partition again.
    let log = tidelog::Log::open(tmp.path(), config).unwrap();
    let p = log.producer();
    let meta = p.send_to("t", 0, Record::new("after reopen")).unwrap();
    assert!(meta.offset >= 3, "acknowledged records keep their offsets");
    let all = log.fetch("t", 0, 0, 100).unwrap();
    for (i, r) in all.iter().take(3).enumerate() {
        assert_eq!(r.value().unwrap(), &format!("ok-{i}"));
    }
    log.close().unwrap();
}

#[test]
fn fetch_runs_concurrently_with_sends() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tidelog::Log::open(tmp.path(), LogConfig::default().maintenance_interval(None)).unwrap();
    log.create_topic("c", TopicConfig::default().segment_bytes(4096))
        .unwrap();
    let total = 3000u64;
    std::thread::scope(|s| {
        let producer = log.producer();
        s.spawn(move || {
            for i in 0..total {
                producer
                    .send("c", Record::new(format!("v{i}")).with_key("k"))
                    .unwrap();
            }
        });
        let reader = log.clone();
        s.spawn(move || {
            let mut next = 0u64;
            while next < total {
                for r in reader.fetch("c", 0, next, 100).unwrap() {
                    assert_eq!(r.offset(), next, "offsets seen only rise, densely");
                    assert_eq!(r.value().unwrap(), &format!("v{next}"));
                    next += 1;
                }
            }
        });
    });
    log.close().unwrap();
}
