//! [`SyncLater`]: a real directory for a bulk writer that acknowledges nothing until it is done
//! (`otsctl import-otsd`, which builds a new calendar in a temporary directory and renames it into
//! place only at the end).
//!
//! Every `fsync`/`fdatasync` the writer asks for (a new segment, a sealed one, the directory) is
//! handed to one background thread instead of being waited for, so the writing thread goes on
//! while the disk writes. [`Syncer::finish`] waits for all of them and gives the first failure.
//! So a sync that "returned" here has only been queued: whoever writes through this storage
//! must treat nothing as durable before [`Syncer::finish`] returns `Ok`, and must give up
//! (not rename into place) when it fails. A failed sync is never retried or forgotten.
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{FsFile, FsStorage, Storage, StorageFile};
use crate::log::LogError;
use crate::sync::lock;

/// The directory, with its syncs queued to a [`Syncer`].
#[derive(Debug)]
pub struct SyncLater {
    inner: FsStorage,
    syncer: Arc<Syncer>,
}

/// The background thread that syncs, and the queue to it.
#[derive(Debug)]
pub struct Syncer {
    queue: Mutex<Option<mpsc::Sender<File>>>,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl SyncLater {
    /// Uses `dir` (created if needed, locked as [`FsStorage::new_locked`]) and starts the
    /// syncing thread; the [`Syncer`] is for [`Syncer::finish`].
    pub fn new_locked(dir: &Path) -> Result<(SyncLater, Arc<Syncer>), LogError> {
        let inner = FsStorage::new_locked(dir)?;
        let (tx, rx) = mpsc::channel::<File>();
        let thread = std::thread::Builder::new()
            .name("log-sync-later".into())
            .spawn(move || sync_all_of(rx))
            .map_err(|e| LogError::io("start the syncing thread for", dir, e))?;
        let syncer = Arc::new(Syncer {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        });
        let storage = SyncLater {
            inner,
            syncer: Arc::clone(&syncer),
        };
        Ok((storage, syncer))
    }

    fn file(&self, file: File) -> Box<dyn StorageFile> {
        Box::new(LaterFile {
            inner: FsFile(file),
            syncer: Arc::clone(&self.syncer),
        })
    }
}

/// Syncs every file received, in order, until the queue closes; the first failure.
fn sync_all_of(rx: mpsc::Receiver<File>) -> io::Result<()> {
    let mut first = Ok(());
    for file in rx {
        if let Err(e) = file.sync_all() {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

impl Syncer {
    fn queue(&self, file: File) -> io::Result<()> {
        let queue = lock(&self.queue);
        let sent = queue.as_ref().map(|tx| tx.send(file));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(io::Error::other("the syncing thread is gone")),
        }
    }

    /// Waits until every sync queued so far is done; the first that failed. Later syncs fail.
    pub fn finish(&self) -> io::Result<()> {
        drop(lock(&self.queue).take());
        match lock(&self.thread).take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the syncing thread panicked"))),
            None => Err(io::Error::other("the syncs were already finished")),
        }
    }
}

impl Storage for SyncLater {
    fn path(&self, name: &str) -> PathBuf {
        self.inner.path(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.file(self.inner.open_file(name)?))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.file(self.inner.create_file(name)?))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.syncer.queue(File::open(&self.inner.dir)?)
    }
}

/// A file whose syncs are queued.
#[derive(Debug)]
struct LaterFile {
    inner: FsFile,
    syncer: Arc<Syncer>,
}

impl StorageFile for LaterFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.inner.write_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.syncer.queue(self.inner.0.try_clone()?)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.syncer.queue(self.inner.0.try_clone()?)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files created, written, renamed and synced through it hold their bytes, and `finish`
    /// reports success once, then refuses further syncs.
    #[test]
    fn queued_syncs_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, syncer) = SyncLater::new_locked(dir.path()).unwrap();
        let mut f = storage.create("a.tmp").unwrap();
        f.allocate(4096).unwrap();
        crate::log::storage::write_all_at(f.as_mut(), b"hello", 0).unwrap();
        f.sync_all().unwrap();
        storage.rename("a.tmp", "a").unwrap();
        storage.sync_dir().unwrap();
        f.sync_data().unwrap();
        syncer.finish().unwrap();
        assert_eq!(&std::fs::read(dir.path().join("a")).unwrap()[..5], b"hello");
        assert!(f.sync_data().is_err(), "a sync after finish");
        assert!(syncer.finish().is_err(), "finished twice");
    }
}
