//! A simulated filesystem for power-cut and fault-injection tests
//! (RELIABILITY.md §3): [`SimFs`] implements [`Vfs`] in memory and keeps, per
//! file, its durable bytes apart from the writes not yet fsynced, and per
//! directory its durable entries apart from creates, renames and unlinks not
//! yet made durable by a directory fsync.
//!
//! - [`SimFs::crash_at`] stops the machine at the n-th mutating call: that call
//!   and every later one fails, as if the power went off under the process.
//! - [`SimFs::crash_image`] builds what a disk could hold after the cut: each
//!   unsynced operation is dropped, kept or (a write) torn, under an
//!   [`CrashModel::Ordered`] model (a prefix of the unsynced operations reached
//!   the disk) or a [`CrashModel::Reordered`] one (each independently, like
//!   ALICE's weak model). Directory changes persist only through `sync_dir`;
//!   renames are atomic. The image is a new, fully durable `SimFs`.
//! - [`SimFs::fail_at`] injects EIO, ENOSPC, a short write, or an fsync EIO
//!   after which the data stays readable but never becomes durable (what ext4
//!   and XFS do), once or until [`SimFs::clear_faults`].
//! - [`SimFs::flip_bit`] and [`SimFs::fail_reads`] damage stored bytes.
//!
//! Everything is deterministic: the same calls and seeds give the same images.
//! `SimFs` has no writable maps ([`VfsFile::map_write`] gives `None`), so the
//! engine writes with `write_all_at`; read maps are snapshots.

use crate::error::{Error, Result};
use crate::mmap::WriteMap;
use crate::vfs::{LockGuard, Vfs, VfsFile};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which unsynced operations a power cut lets reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashModel {
    /// A random prefix of the unsynced operations persisted, in order; the
    /// first one not kept may be torn.
    Ordered,
    /// Each unsynced operation independently dropped, kept or torn.
    Reordered,
}

/// A fault [`SimFs::fail_at`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Any mutating call fails with EIO and has no effect.
    Eio,
    /// A call that needs space (write, allocate, growing set_len, create) fails
    /// with ENOSPC and has no effect.
    Enospc,
    /// A write stores the first half of its bytes, then fails with ENOSPC.
    ShortWrite,
    /// An fsync (file or directory) fails with EIO; what it should have made
    /// durable stays readable but never reaches the disk.
    SyncEio,
}

/// Whether a fault fires once or on every eligible call from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// The first eligible call at or after the given operation fails.
    Once,
    /// Every eligible call from the given operation on fails, until
    /// [`SimFs::clear_faults`].
    Forever,
}

/// Test-the-tests settings: each makes the filesystem lie the way a buggy
/// engine would, so a suite that still passes under it is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// File fsyncs return `Ok` without making anything durable.
    SkipFileSync,
    /// Directory fsyncs return `Ok` without making anything durable.
    SkipDirSync,
}

/// What one call did, for [`SimFs`]'s operation counter and faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    SetLen { grows: bool },
    Allocate,
    SyncData,
    SyncDir,
    Create,
    Mkdir,
    Rename,
    Remove,
}

impl Op {
    fn eligible(self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::Eio => true,
            FaultKind::Enospc => matches!(
                self,
                Op::Write | Op::Allocate | Op::SetLen { grows: true } | Op::Create | Op::Mkdir
            ),
            FaultKind::ShortWrite => self == Op::Write,
            FaultKind::SyncEio => matches!(self, Op::SyncData | Op::SyncDir),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    at: u64,
    kind: FaultKind,
    persistence: Persistence,
    fired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { position: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileData {
    /// What reads see.
    current: Vec<u8>,
    /// What the disk holds for certain.
    durable: Vec<u8>,
    /// Changes since the last fsync, with their global sequence numbers.
    pending: Vec<(u64, FileOp)>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, Node),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl DirOp {
    /// The directories whose fsync makes this change durable.
    fn dirs(&self) -> Vec<PathBuf> {
        let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) => vec![parent(p)],
            DirOp::Rename(from, to) => vec![parent(from), parent(to)],
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The namespace processes see.
    names: BTreeMap<PathBuf, Node>,
    /// The namespace the disk holds for certain.
    durable_names: BTreeMap<PathBuf, Node>,
    /// Directory changes not yet durable, with their sequence numbers.
    dir_pending: Vec<(u64, DirOp)>,
    files: HashMap<u64, FileData>,
    next_inode: u64,
    /// Mutating calls so far (the operation counter).
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    faults: Vec<Fault>,
    read_faults: Vec<(PathBuf, Range<u64>)>,
    locks: BTreeSet<PathBuf>,
    syncs: u64,
    sabotage: Option<Sabotage>,
    /// Which calls the injected faults hit.
    fault_log: Vec<String>,
}

/// The simulated filesystem. Cheap to clone (a shared handle).
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimFs")
            .field("entries", &s.names.len())
            .field("ops", &s.ops)
            .field("crashed", &s.crashed)
            .finish_non_exhaustive()
    }
}

fn os_error(path: &Path, code: i32) -> Error {
    Error::io(path, io::Error::from_raw_os_error(code))
}

fn not_found(path: &Path) -> Error {
    os_error(path, libc::ENOENT)
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A small deterministic generator (SplitMix64) for crash images.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

const SECTOR: u64 = 512;

fn apply(content: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { position, bytes } => write_into(content, *position, bytes),
        FileOp::SetLen(len) => content.resize(usize_of(*len), 0),
    }
}

fn write_into(content: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    let start = usize_of(position);
    let end = start.saturating_add(bytes.len());
    if content.len() < end {
        content.resize(end, 0);
    }
    if let Some(slot) = content.get_mut(start..end) {
        slot.copy_from_slice(bytes);
    }
}

/// A torn write: the bytes up to a random point land; each later 512-byte
/// sector is left as it was, zero-filled, or filled with random bytes.
fn tear(content: &mut Vec<u8>, position: u64, bytes: &[u8], rng: &mut Rng) {
    let keep = usize_of(rng.below(bytes.len() as u64 + 1));
    write_into(content, position, bytes.get(..keep).unwrap_or_default());
    let mut at = position + keep as u64;
    let end = position + bytes.len() as u64;
    while at < end {
        let sector_end = ((at / SECTOR) + 1).saturating_mul(SECTOR).min(end);
        let n = usize_of(sector_end - at);
        match rng.below(3) {
            0 => {}
            1 => write_into(content, at, &vec![0u8; n]),
            _ => {
                let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                write_into(content, at, &noise);
            }
        }
        at = sector_end;
    }
}

fn apply_dir_op(names: &mut BTreeMap<PathBuf, Node>, op: &DirOp) {
    match op {
        DirOp::Link(path, node) => {
            names.insert(path.clone(), *node);
        }
        DirOp::Unlink(path) => {
            let doomed: Vec<PathBuf> = names
                .range(path.clone()..)
                .take_while(|(p, _)| p.starts_with(path))
                .map(|(p, _)| p.clone())
                .collect();
            for p in doomed {
                names.remove(&p);
            }
        }
        DirOp::Rename(from, to) => {
            if !names.contains_key(from) {
                return;
            }
            let moved: Vec<(PathBuf, Node)> = names
                .range(from.clone()..)
                .take_while(|(p, _)| p.starts_with(from))
                .map(|(p, n)| (p.clone(), *n))
                .collect();
            apply_dir_op(names, &DirOp::Unlink(to.clone()));
            for (p, _) in &moved {
                names.remove(p);
            }
            for (p, n) in moved {
                let rest = p.strip_prefix(from).map(Path::to_path_buf).unwrap_or_default();
                let target = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                names.insert(target, n);
            }
        }
    }
}

impl SimFs {
    /// An empty filesystem.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// A shared handle, for [`crate::internals::open_log_with_vfs`].
    pub fn shared(&self) -> Arc<dyn Vfs> {
        Arc::new(self.clone())
    }

    /// Creates `path` and its parents durably (the test's starting point).
    pub fn with_dir(self, path: impl AsRef<Path>) -> SimFs {
        {
            let mut s = self.state.lock();
            let mut at = PathBuf::new();
            for part in path.as_ref().components() {
                at.push(part);
                s.names.entry(at.clone()).or_insert(Node::Dir);
                s.durable_names.entry(at.clone()).or_insert(Node::Dir);
            }
        }
        self
    }

    /// Mutating calls made so far: crash and fault points are numbered by it.
    pub fn op_count(&self) -> u64 {
        self.state.lock().ops
    }

    /// Makes the filesystem lie (a negative control for the suites).
    pub fn sabotage(&self, sabotage: Sabotage) {
        self.state.lock().sabotage = Some(sabotage);
    }

    /// Successful fsyncs (file and directory) so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Cuts the power at mutating call number `n` (counting from 0): that call
    /// and all later ones fail with EIO and change nothing.
    pub fn crash_at(&self, n: u64) {
        let mut s = self.state.lock();
        s.crash_at = Some(n);
        if s.ops >= n {
            s.crashed = true;
        }
    }

    /// Cuts the power now.
    pub fn crash_now(&self) {
        let mut s = self.state.lock();
        s.crashed = true;
    }

    /// Whether the power is off.
    pub fn crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// Makes the first eligible mutating call at or after call number `n` fail
    /// with `kind` (every eligible call from then on, if `Forever`).
    pub fn fail_at(&self, n: u64, kind: FaultKind, persistence: Persistence) {
        self.state.lock().faults.push(Fault {
            at: n,
            kind,
            persistence,
            fired: false,
        });
    }

    /// Removes every injected fault (space freed, the disk healthy again).
    pub fn clear_faults(&self) {
        let mut s = self.state.lock();
        s.faults.clear();
        s.read_faults.clear();
    }

    /// The calls injected faults hit, in order (for failure messages).
    pub fn fault_log(&self) -> Vec<String> {
        self.state.lock().fault_log.clone()
    }

    /// How many injected faults have fired.
    pub fn faults_fired(&self) -> usize {
        self.state.lock().faults.iter().filter(|f| f.fired).count()
    }

    /// Makes `pread`s of `path` that touch `range` fail with EIO (a bad sector).
    pub fn fail_reads(&self, path: impl AsRef<Path>, range: Range<u64>) {
        self.state
            .lock()
            .read_faults
            .push((path.as_ref().to_path_buf(), range));
    }

    /// Flips bit `bit` (0-7) of byte `byte` of `path`, durably (bit rot).
    /// Returns false if the file does not hold that byte.
    pub fn flip_bit(&self, path: impl AsRef<Path>, byte: u64, bit: u8) -> bool {
        let mut s = self.state.lock();
        let Some(Node::File(inode)) = s.names.get(path.as_ref()).copied() else {
            return false;
        };
        let Some(file) = s.files.get_mut(&inode) else {
            return false;
        };
        let mask = 1u8 << (bit % 8);
        let mut hit = false;
        for content in [&mut file.current, &mut file.durable] {
            if let Some(b) = content.get_mut(usize_of(byte)) {
                *b ^= mask;
                hit = true;
            }
        }
        hit
    }

    /// The names of every file and directory, as processes see them.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.lock().names.keys().cloned().collect()
    }

    /// The bytes of `path` as processes see them.
    pub fn contents(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let s = self.state.lock();
        match s.names.get(path.as_ref()) {
            Some(Node::File(inode)) => s.files.get(inode).map(|f| f.current.clone()),
            _ => None,
        }
    }

    /// Overwrites (or creates) the file at `path` durably, outside any
    /// workload: for tests that damage or plant files.
    pub fn put(&self, path: impl AsRef<Path>, bytes: &[u8]) {
        let mut s = self.state.lock();
        let path = path.as_ref().to_path_buf();
        let inode = match s.names.get(&path) {
            Some(Node::File(inode)) => *inode,
            _ => {
                s.next_inode += 1;
                let inode = s.next_inode;
                s.names.insert(path.clone(), Node::File(inode));
                s.durable_names.insert(path, Node::File(inode));
                inode
            }
        };
        let file = s.files.entry(inode).or_default();
        file.current = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.pending.clear();
    }

    /// Unsynced operations (file writes and directory changes) right now.
    pub fn unsynced_ops(&self) -> usize {
        let s = self.state.lock();
        s.dir_pending.len() + s.files.values().map(|f| f.pending.len()).sum::<usize>()
    }

    /// The disk after a power cut now, under `model`, with choices drawn from
    /// `seed`: a new, fully durable filesystem with no faults and no locks.
    pub fn crash_image(&self, model: CrashModel, seed: u64) -> SimFs {
        let s = self.state.lock();
        let mut rng = Rng(seed ^ 0x7469_6465_6c6f_6721);
        // Every unsynced operation, in the order it was made.
        #[derive(Clone, Copy)]
        enum Pending {
            Dir(usize),
            File(u64, usize),
        }
        let mut all: Vec<(u64, Pending)> = s
            .dir_pending
            .iter()
            .enumerate()
            .map(|(i, (seq, _))| (*seq, Pending::Dir(i)))
            .collect();
        for (inode, file) in &s.files {
            for (i, (seq, _)) in file.pending.iter().enumerate() {
                all.push((*seq, Pending::File(*inode, i)));
            }
        }
        all.sort_by_key(|(seq, _)| *seq);
        // Per operation: 0 dropped, 1 kept, 2 torn (writes only).
        let fates: Vec<u8> = match model {
            CrashModel::Ordered => {
                let cut = usize_of(rng.below(all.len() as u64 + 1));
                let torn = rng.below(2) == 0;
                (0..all.len())
                    .map(|i| match i.cmp(&cut) {
                        std::cmp::Ordering::Less => 1,
                        std::cmp::Ordering::Equal if torn => 2,
                        _ => 0,
                    })
                    .collect()
            }
            CrashModel::Reordered => (0..all.len())
                .map(|_| match rng.below(4) {
                    0 | 1 => 1,
                    2 => 0,
                    _ => 2,
                })
                .collect(),
        };
        let mut names = s.durable_names.clone();
        let mut contents: HashMap<u64, Vec<u8>> = s
            .files
            .iter()
            .map(|(inode, f)| (*inode, f.durable.clone()))
            .collect();
        for ((_, pending), fate) in all.iter().zip(&fates) {
            if *fate == 0 {
                continue;
            }
            match *pending {
                Pending::Dir(i) => {
                    if let Some((_, op)) = s.dir_pending.get(i) {
                        apply_dir_op(&mut names, op);
                    }
                }
                Pending::File(inode, i) => {
                    let (Some(file), Some(content)) = (s.files.get(&inode), contents.get_mut(&inode)) else {
                        continue;
                    };
                    match file.pending.get(i) {
                        Some((_, FileOp::Write { position, bytes })) if *fate == 2 => {
                            tear(content, *position, bytes, &mut rng)
                        }
                        Some((_, op)) => apply(content, op),
                        None => {}
                    }
                }
            }
        }
        // Entries whose directory did not survive are gone with it.
        let reachable: BTreeMap<PathBuf, Node> = names
            .iter()
            .filter(|(p, _)| {
                p.ancestors()
                    .skip(1)
                    .filter(|a| !a.as_os_str().is_empty() && a.parent().is_some())
                    .all(|a| names.get(a) == Some(&Node::Dir))
            })
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        let mut files = HashMap::new();
        for node in reachable.values() {
            if let Node::File(inode) = node {
                let content = contents.get(inode).cloned().unwrap_or_default();
                files.insert(
                    *inode,
                    FileData {
                        current: content.clone(),
                        durable: content,
                        pending: Vec::new(),
                    },
                );
            }
        }
        SimFs {
            state: Arc::new(Mutex::new(State {
                durable_names: reachable.clone(),
                names: reachable,
                files,
                next_inode: s.next_inode,
                ..State::default()
            })),
        }
    }

    /// The disk after a power cut that kept no unsynced operation.
    pub fn durable_image(&self) -> SimFs {
        let image = {
            let s = self.state.lock();
            let names = s.durable_names.clone();
            let files = s
                .files
                .iter()
                .map(|(inode, f)| {
                    (
                        *inode,
                        FileData {
                            current: f.durable.clone(),
                            durable: f.durable.clone(),
                            pending: Vec::new(),
                        },
                    )
                })
                .collect();
            State {
                names: names.clone(),
                durable_names: names,
                files,
                next_inode: s.next_inode,
                ..State::default()
            }
        };
        SimFs {
            state: Arc::new(Mutex::new(image)),
        }
    }

    fn file(&self, path: &Path, inode: u64) -> Arc<dyn VfsFile> {
        Arc::new(SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
        })
    }
}

impl State {
    /// Counts a mutating call and decides whether it may go ahead: `Err` if
    /// the power is off or an injected fault fires (`Ok(Some(kind))` for a
    /// fault the caller carries out itself: a short write or an fsync EIO).
    fn begin(&mut self, op: Op, path: &Path) -> Result<Option<FaultKind>> {
        let n = self.ops;
        self.ops += 1;
        if self.crash_at.is_some_and(|at| n >= at) {
            self.crashed = true;
        }
        if self.crashed {
            return Err(os_error(path, libc::EIO));
        }
        let fault = self.faults.iter_mut().find(|f| {
            n >= f.at && op.eligible(f.kind) && (f.persistence == Persistence::Forever || !f.fired)
        });
        let Some(fault) = fault else {
            return Ok(None);
        };
        fault.fired = true;
        let kind = fault.kind;
        self.fault_log
            .push(format!("{kind:?} on {op:?} (call {n}) of {}", path.display()));
        match kind {
            FaultKind::Eio => Err(os_error(path, libc::EIO)),
            FaultKind::Enospc => Err(os_error(path, libc::ENOSPC)),
            kind @ (FaultKind::ShortWrite | FaultKind::SyncEio) => Ok(Some(kind)),
        }
    }

    fn parent_is_dir(&self, path: &Path) -> bool {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.names.get(p) == Some(&Node::Dir),
            _ => true,
        }
    }

    fn link(&mut self, path: &Path, node: Node) {
        self.names.insert(path.to_path_buf(), node);
        let seq = self.ops;
        self.dir_pending
            .push((seq, DirOp::Link(path.to_path_buf(), node)));
    }

    fn new_file(&mut self, path: &Path) -> u64 {
        self.next_inode += 1;
        let inode = self.next_inode;
        self.files.insert(inode, FileData::default());
        self.link(path, Node::File(inode));
        inode
    }

    fn live_file(&mut self, path: &Path, inode: u64) -> Result<&mut FileData> {
        self.files.get_mut(&inode).ok_or_else(|| not_found(path))
    }

    fn record(&mut self, path: &Path, inode: u64, op: FileOp) -> Result<()> {
        let seq = self.ops;
        let file = self.live_file(path, inode)?;
        apply(&mut file.current, &op);
        file.pending.push((seq, op));
        Ok(())
    }
}

impl Vfs for SimFs {
    fn open(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        let s = self.state.lock();
        match s.names.get(path) {
            Some(Node::File(inode)) => Ok(self.file(path, *inode)),
            Some(Node::Dir) => Err(os_error(path, libc::EISDIR)),
            None => Err(not_found(path)),
        }
    }

    fn create_new(&self, path: &Path) -> Result<Arc<dyn VfsFile>> {
        let mut s = self.state.lock();
        s.begin(Op::Create, path)?;
        if s.names.contains_key(path) {
            return Err(os_error(path, libc::EEXIST));
        }
        if !s.parent_is_dir(path) {
            return Err(not_found(path));
        }
        let inode = s.new_file(path);
        Ok(self.file(path, inode))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Rename, from)?;
        if !s.names.contains_key(from) {
            return Err(not_found(from));
        }
        if !s.parent_is_dir(to) {
            return Err(not_found(to));
        }
        let op = DirOp::Rename(from.to_path_buf(), to.to_path_buf());
        apply_dir_op(&mut s.names, &op);
        let seq = s.ops;
        s.dir_pending.push((seq, op));
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Remove, path)?;
        match s.names.get(path) {
            Some(Node::File(_)) => {}
            Some(Node::Dir) => return Err(os_error(path, libc::EISDIR)),
            None => return Err(not_found(path)),
        }
        let op = DirOp::Unlink(path.to_path_buf());
        apply_dir_op(&mut s.names, &op);
        let seq = s.ops;
        s.dir_pending.push((seq, op));
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.begin(Op::Remove, path)?;
        if s.names.get(path) != Some(&Node::Dir) {
            return Err(not_found(path));
        }
        let op = DirOp::Unlink(path.to_path_buf());
        apply_dir_op(&mut s.names, &op);
        let seq = s.ops;
        s.dir_pending.push((seq, op));
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<Option<LockGuard>> {
        let mut s = self.state.lock();
        if !s.names.contains_key(path) {
            s.begin(Op::Create, path)?;
            if !s.parent_is_dir(path) {
                return Err(not_found(path));
            }
            s.new_file(path);
        }
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(LockGuard::new(SimLock {
            state: Arc::downgrade(&self.state),
            path: path.to_path_buf(),
        })))
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        let mut at = PathBuf::new();
        for part in path.components() {
            at.push(part);
            match s.names.get(&at) {
                Some(Node::Dir) => continue,
                Some(Node::File(_)) => return Err(os_error(&at, libc::ENOTDIR)),
                None => {
                    s.begin(Op::Mkdir, &at)?;
                    s.link(&at, Node::Dir);
                }
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        let fault = s.begin(Op::SyncDir, path)?;
        if s.names.get(path) != Some(&Node::Dir) {
            return Err(not_found(path));
        }
        if s.sabotage == Some(Sabotage::SkipDirSync) {
            return Ok(());
        }
        let pending = std::mem::take(&mut s.dir_pending);
        let (mine, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, op)| op.dirs().iter().any(|d| d == path));
        s.dir_pending = rest;
        if fault == Some(FaultKind::SyncEio) {
            // Lost: these changes stay visible but never reach the disk.
            return Err(os_error(path, libc::EIO));
        }
        for (_, op) in &mine {
            let mut durable = std::mem::take(&mut s.durable_names);
            apply_dir_op(&mut durable, op);
            s.durable_names = durable;
        }
        s.syncs += 1;
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let s = self.state.lock();
        if s.names.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<String> = s
            .names
            .range(dir.to_path_buf()..)
            .skip(1)
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, _)| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        Ok(self.state.lock().names.contains_key(path))
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let s = self.state.lock();
        match s.names.get(path) {
            Some(Node::File(inode)) => Ok(s.files.get(inode).map(|f| f.current.clone()).unwrap_or_default()),
            Some(Node::Dir) => Err(os_error(path, libc::EISDIR)),
            None => Err(not_found(path)),
        }
    }
}

/// Releases a simulated lock when dropped.
struct SimLock {
    state: std::sync::Weak<Mutex<State>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.lock().locks.remove(&self.path);
        }
    }
}

/// An open simulated file (by inode: it survives renames of its name).
struct SimFile {
    fs: SimFs,
    path: PathBuf,
    inode: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VfsFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        let mut s = self.fs.state.lock();
        let end = position.saturating_add(buf.len() as u64);
        let bad = s
            .read_faults
            .iter()
            .any(|(p, r)| p == &self.path && r.start < end && position < r.end);
        if bad {
            return Err(os_error(&self.path, libc::EIO));
        }
        let file = s.live_file(&self.path, self.inode)?;
        let from = usize_of(position);
        match file.current.get(from..from.saturating_add(buf.len())) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(Error::io(
                &self.path,
                io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"),
            )),
        }
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        let mut s = self.fs.state.lock();
        let fault = s.begin(Op::Write, &self.path)?;
        if fault == Some(FaultKind::ShortWrite) {
            let half = buf.get(..buf.len() / 2).unwrap_or_default().to_vec();
            s.record(
                &self.path,
                self.inode,
                FileOp::Write {
                    position,
                    bytes: half,
                },
            )?;
            return Err(os_error(&self.path, libc::ENOSPC));
        }
        s.record(
            &self.path,
            self.inode,
            FileOp::Write {
                position,
                bytes: buf.to_vec(),
            },
        )
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut s = self.fs.state.lock();
        let current = s.live_file(&self.path, self.inode)?.current.len() as u64;
        s.begin(Op::SetLen { grows: len > current }, &self.path)?;
        s.record(&self.path, self.inode, FileOp::SetLen(len))
    }

    fn allocate(&self, len: u64) -> Result<()> {
        let mut s = self.fs.state.lock();
        s.begin(Op::Allocate, &self.path)?;
        let current = s.live_file(&self.path, self.inode)?.current.len() as u64;
        if len > current {
            s.record(&self.path, self.inode, FileOp::SetLen(len))?;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut s = self.fs.state.lock();
        let fault = s.begin(Op::SyncData, &self.path)?;
        if s.sabotage == Some(Sabotage::SkipFileSync) {
            return Ok(());
        }
        let file = s.live_file(&self.path, self.inode)?;
        let pending = std::mem::take(&mut file.pending);
        if fault == Some(FaultKind::SyncEio) {
            // The kernel marked the pages clean: readable, never durable.
            drop(pending);
            return Err(os_error(&self.path, libc::EIO));
        }
        // Only what is pending reaches the disk: writes an earlier failed fsync
        // dropped stay lost even though reads still see them.
        for (_, op) in &pending {
            apply(&mut file.durable, op);
        }
        s.syncs += 1;
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        let mut s = self.fs.state.lock();
        Ok(s.live_file(&self.path, self.inode)?.current.len() as u64)
    }

    fn map_read(&self, len: usize) -> Result<Bytes> {
        let mut s = self.fs.state.lock();
        let file = s.live_file(&self.path, self.inode)?;
        let n = len.min(file.current.len());
        Ok(Bytes::copy_from_slice(file.current.get(..n).unwrap_or_default()))
    }

    fn map_write(&self, _len: usize) -> Result<Option<WriteMap>> {
        Ok(None)
    }
}
