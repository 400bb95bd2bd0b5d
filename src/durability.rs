//! Group commit for `Durability::Always` (okaywal's shape): a sender waits
//! until its partition's durable watermark passes its batch; if nobody is
//! syncing, it becomes the leader, fsyncs without holding any lock, advances the
//! watermark and wakes everyone. One fsync serves every waiter whose batch it
//! covers. A failed fsync fences the partition and fails every waiter.
//!
//! Lock order: `PartitionLog.inner` is never held while `GroupCommit.state` is
//! taken and vice versa (the fsync runs with neither).

use crate::error::{Error, Result};
use crate::partition::PartitionLog;
use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    /// Every offset below this is durable.
    durable_offset: u64,
    syncing: bool,
    failed: Option<String>,
}

/// Per-partition group-commit state.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    synced: Condvar,
}

impl GroupCommit {
    pub(crate) fn new(durable_offset: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                durable_offset,
                ..State::default()
            }),
            synced: Condvar::new(),
        }
    }

    /// Every offset below this is known durable.
    pub(crate) fn durable_offset(&self) -> u64 {
        self.state.lock().durable_offset
    }

    /// Whether `offset` is already durable (no wait needed).
    pub(crate) fn is_durable(&self, next_offset: u64) -> bool {
        self.state.lock().durable_offset >= next_offset
    }

    /// Blocks until every offset below `next_offset` is durable, leading an
    /// fsync when nobody else is.
    pub(crate) fn wait_durable(&self, log: &PartitionLog, next_offset: u64) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            if state.failed.is_some() {
                return Err(Error::Fenced {
                    path: log.dir().to_owned(),
                });
            }
            if state.durable_offset >= next_offset {
                return Ok(());
            }
            if state.syncing {
                self.synced.wait(&mut state);
                continue;
            }
            state.syncing = true;
            drop(state);
            let result = log.sync_active();
            state = self.state.lock();
            state.syncing = false;
            match result {
                Ok(end) => state.durable_offset = state.durable_offset.max(end),
                Err(e) => {
                    state.failed = Some(e.to_string());
                    self.synced.notify_all();
                    return Err(e);
                }
            }
            self.synced.notify_all();
        }
    }
}
