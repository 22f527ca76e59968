//! An in-memory [`Storage`] for tests that separates written from durable bytes and injects faults.
//!
//! Model: files are inodes with `written` and `durable` contents; `sync_data`/`sync_all` make an
//! inode's written contents durable. Directory entries (name -> inode) are likewise written or durable;
//! `sync_dir` makes them durable. [`FaultStorage::crash`] returns what survives a power loss.
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

/// Faults to inject. Each counter-based fault fires once, then clears.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail the sync after this many more successful syncs (`Some(0)`: the next one).
    pub fail_sync_after: Option<u64>,
    /// The next write writes at most this many bytes and reports that (a short write).
    pub short_write: Option<usize>,
    /// The next write writes this many bytes, then fails (e.g. a full disk mid-write).
    pub fail_write_after: Option<usize>,
    /// Every allocation fails with "no space".
    pub no_space: bool,
    /// Every file sync takes this long (a slow disk), so that work queues up behind it.
    pub slow_sync: Option<std::time::Duration>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    written: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    faults: Faults,
    syncs: u64,
}

/// An in-memory directory with fault injection. Clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct FaultStorage {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    crate::sync::lock(state)
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, name.to_string())
}

impl FaultStorage {
    /// An empty directory.
    pub fn new() -> FaultStorage {
        FaultStorage::default()
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// Number of successful syncs so far.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// What survives a power loss now: durable names with durable contents.
    pub fn crash(&self) -> FaultStorage {
        self.image(|i| i.durable.clone(), true)
    }

    /// What survives a killed process: everything written.
    pub fn crash_process(&self) -> FaultStorage {
        self.image(|i| i.written.clone(), false)
    }

    fn image(&self, contents: impl Fn(&Inode) -> Vec<u8>, durable_names: bool) -> FaultStorage {
        let s = lock(&self.state);
        let names = if durable_names {
            &s.durable_names
        } else {
            &s.names
        };
        let mut out = State::default();
        for (name, &ino) in names {
            let data = contents(&s.inodes[ino]);
            out.inodes.push(Inode {
                written: data.clone(),
                durable: data,
            });
            out.names.insert(name.clone(), out.inodes.len() - 1);
        }
        out.durable_names = out.names.clone();
        FaultStorage {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// The written contents of `name`.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        s.names.get(name).map(|&i| s.inodes[i].written.clone())
    }

    /// Flips bit `bit` of byte `offset` of `name`, in written and durable contents alike (bit rot).
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) -> io::Result<()> {
        let mut s = lock(&self.state);
        let ino = *s.names.get(name).ok_or_else(|| not_found(name))?;
        let inode = &mut s.inodes[ino];
        for data in [&mut inode.written, &mut inode.durable] {
            if let Some(b) = data.get_mut(offset) {
                *b ^= 1 << bit;
            }
        }
        Ok(())
    }

    /// Names of the segment files, sorted.
    pub fn list_segments(&self) -> Vec<String> {
        let s = lock(&self.state);
        s.names
            .keys()
            .filter(|n| n.ends_with(".seg"))
            .cloned()
            .collect()
    }

    /// Renames a file (to simulate a half-done operation).
    pub fn rename_file(&self, from: &str, to: &str) -> io::Result<()> {
        Storage::rename(self, from, to)
    }

    /// Writes the written contents of every file into the real directory `dir`.
    pub fn materialize(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let s = lock(&self.state);
        for (name, &ino) in &s.names {
            std::fs::write(dir.join(name), &s.inodes[ino].written)?;
        }
        Ok(())
    }
}

impl Storage for FaultStorage {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("mem:").join(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.state).names.keys().cloned().collect())
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let ino = *lock(&self.state)
            .names
            .get(name)
            .ok_or_else(|| not_found(name))?;
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut s = lock(&self.state);
        s.inodes.push(Inode::default());
        let ino = s.inodes.len() - 1;
        s.names.insert(name.to_string(), ino);
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = lock(&self.state);
        let ino = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_string(), ino);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        lock(&self.state)
            .names
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut s = lock(&self.state);
        fire_sync_fault(&mut s)?;
        s.durable_names = s.names.clone();
        Ok(())
    }
}

fn fire_sync_fault(s: &mut State) -> io::Result<()> {
    match s.faults.fail_sync_after {
        Some(0) => {
            s.faults.fail_sync_after = None;
            Err(io::Error::other("injected fsync failure"))
        }
        Some(n) => {
            s.faults.fail_sync_after = Some(n - 1);
            s.syncs += 1;
            Ok(())
        }
        None => {
            s.syncs += 1;
            Ok(())
        }
    }
}

#[derive(Debug)]
struct FaultFile {
    state: Arc<Mutex<State>>,
    ino: usize,
}

impl FaultFile {
    fn sync(&mut self) -> io::Result<()> {
        let delay = lock(&self.state).faults.slow_sync;
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let mut s = lock(&self.state);
        fire_sync_fault(&mut s)?;
        let inode = &mut s.inodes[self.ino];
        inode.durable = inode.written.clone();
        Ok(())
    }
}

fn store(data: &mut Vec<u8>, buf: &[u8], offset: usize) {
    if data.len() < offset + buf.len() {
        data.resize(offset + buf.len(), 0);
    }
    data[offset..offset + buf.len()].copy_from_slice(buf);
}

impl StorageFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = lock(&self.state);
        let data = &s.inodes[self.ino].written;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut s = lock(&self.state);
        let (n, fail) = match (
            s.faults.short_write.take(),
            s.faults.fail_write_after.take(),
        ) {
            (_, Some(k)) => (k.min(buf.len()), true),
            (Some(k), None) => (k.clamp(1, buf.len()), false),
            (None, None) => (buf.len(), false),
        };
        store(&mut s.inodes[self.ino].written, &buf[..n], offset as usize);
        if fail {
            return Err(io::Error::other("injected write failure"));
        }
        Ok(n)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.state).inodes[self.ino].written.len() as u64)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        lock(&self.state).inodes[self.ino]
            .written
            .resize(len as usize, 0);
        Ok(())
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        if s.faults.no_space {
            return Err(io::Error::from_raw_os_error(28));
        }
        let data = &mut s.inodes[self.ino].written;
        if (data.len() as u64) < len {
            data.resize(len as usize, 0);
        }
        Ok(())
    }
}
