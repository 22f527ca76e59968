//! The writer's I/O, behind two small traits: [`Storage`] (a directory) and [`StorageFile`].
//!
//! [`FsStorage`] is the real thing. [`FaultStorage`] keeps files in memory, separates written from
//! durable bytes and injects faults (failed fsync, short or failing writes, bit flips) for tests.
//! [`SyncLater`] is the real thing with every sync done by a background thread, for a bulk writer
//! that acknowledges nothing until the end.
//! Readers of sealed segments do not go through this trait: they map files directly (`mmap`).
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{io_at, LogError};

mod fault;
mod later;
pub use fault::{FaultStorage, Faults};
pub use later::{SyncLater, Syncer};

/// A directory of files.
pub trait Storage: Send + Sync + Debug {
    /// The path of `name`, for error messages.
    fn path(&self, name: &str) -> PathBuf;
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Creates `name`, replacing any existing file of that name.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Atomically renames `from` to `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// An open file.
pub trait StorageFile: Send + Debug {
    /// Reads at `offset`; returns the number of bytes read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes at `offset`; may write fewer bytes than given.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&mut self) -> io::Result<()>;
    /// The file's length.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len`.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Allocates blocks for bytes `0 .. len` (extending the file), so later writes cannot run out of
    /// space.
    fn allocate(&mut self, len: u64) -> io::Result<()>;
}

/// Writes all of `buf` at `offset`, looping on short writes.
pub fn write_all_at(file: &mut dyn StorageFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `offset`; `Ok(false)` if the file ends first.
pub fn read_exact_at(
    file: &dyn StorageFile,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<bool> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A real directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
    /// Holds the exclusive `flock` of [`LOCK_FILE`] while open.
    _lock: Option<std::sync::Arc<File>>,
}

/// The file a writer locks so that two writers never share a directory.
pub const LOCK_FILE: &str = "LOCK";

impl FsStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: &Path) -> io::Result<FsStorage> {
        fs::create_dir_all(dir)?;
        Ok(FsStorage {
            dir: dir.to_path_buf(),
            _lock: None,
        })
    }

    /// Uses `dir`, creating it if needed, and takes an exclusive lock on it.
    pub fn new_locked(dir: &Path) -> Result<FsStorage, LogError> {
        use rustix::fs::{flock, FlockOperation};
        fs::create_dir_all(dir).map_err(io_at("create directory", dir))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at("open", &path))?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| LogError::io("lock (is another writer running?)", &path, e.into()))?;
        Ok(FsStorage {
            dir: dir.to_path_buf(),
            _lock: Some(std::sync::Arc::new(file)),
        })
    }

    /// Opens `name`, which exists, for reading and writing.
    pub(crate) fn open_file(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(name))
    }

    /// Creates `name` empty (emptying it if it exists), for reading and writing.
    pub(crate) fn create_file(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(name))
    }
}

impl Storage for FsStorage {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(self.open_file(name)?)))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(self.create_file(name)?)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        crate::failpoint::before_fdatasync()?;
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(&self.0, FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => {
                tracing::warn!("fallocate not supported; segment is sparse");
                self.extend_sparse(len)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl FsFile {
    fn extend_sparse(&mut self, len: u64) -> io::Result<()> {
        if self.0.metadata()?.len() < len {
            self.0.set_len(len)?;
        }
        Ok(())
    }
}
