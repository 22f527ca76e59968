//! Read-only memory maps of sealed segments. The only module allowed `unsafe`.
#![allow(unsafe_code)]
use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::{Advice, Mmap, MmapOptions};

use super::error::{io_at, LogError};

/// A sealed segment mapped into memory (or an empty slice for an empty file, which cannot be mapped).
#[derive(Debug)]
pub struct Mapped(Option<Mmap>);

impl Mapped {
    /// Maps the sealed segment at `path` for reading.
    pub fn sealed(path: &Path) -> Result<Mapped, LogError> {
        let file = File::open(path).map_err(io_at("open", path))?;
        let len = file.metadata().map_err(io_at("stat", path))?.len();
        if len == 0 {
            return Ok(Mapped(None));
        }
        // SAFETY: the mapping is read-only and only ever created for sealed segments, which are
        // never written or truncated again, by the writer or anyone else (a documented assumption,
        // "Assumptions about the storage medium" in log-format/README.md). Hence the bytes behind the
        // returned slice do not change while it lives. The file is fully written, not sparse, so
        // reading it cannot fault for lack of space.
        let map =
            unsafe { MmapOptions::new().populate().map(&file) }.map_err(io_at("mmap", path))?;
        // A hint only; reading is correct without it.
        let _ = map.advise(Advice::Sequential);
        Ok(Mapped(Some(map)))
    }
}

impl Mapped {
    /// Maps a scratch file for random reads: one that this process wrote, closed and never writes
    /// again (`otsctl import-otsd`'s row table in its private temporary directory).
    pub fn scratch(path: &Path) -> Result<Mapped, LogError> {
        let file = File::open(path).map_err(io_at("open", path))?;
        let len = file.metadata().map_err(io_at("stat", path))?.len();
        if len == 0 {
            return Ok(Mapped(None));
        }
        // SAFETY: read-only mapping of a file that its only writer (this process) has finished and
        // closed, inside a temporary directory no other program is told about; nothing truncates
        // or rewrites it while the map lives, so the bytes behind the slice do not change.
        let map = unsafe { MmapOptions::new().map(&file) }.map_err(io_at("mmap", path))?;
        // A hint only; reading is correct without it.
        let _ = map.advise(Advice::Random);
        Ok(Mapped(Some(map)))
    }
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// A writable shared map of a whole file: the bulk builder of the projection's rebuildable
/// indexes writes through it instead of one `pwrite` per 8-byte slot.
#[derive(Debug)]
pub struct MappedMut(Option<memmap2::MmapMut>);

impl MappedMut {
    /// Maps `file` (opened read-write, already sized and allocated) for reading and writing.
    pub fn whole(file: &File, path: &Path) -> Result<MappedMut, LogError> {
        let len = file.metadata().map_err(io_at("stat", path))?.len();
        if len == 0 {
            return Ok(MappedMut(None));
        }
        // SAFETY: callers map only files of a projection directory they write exclusively (otsd's
        // checkpointer, or `otsctl replay` under the log's writer lock), after sizing them with
        // `fallocate`, so the file is not truncated or written by anyone else while the map lives
        // and stores into it cannot fault for lack of space. Readers of the same files use `pread`
        // and tolerate any byte they see: every slot and entry is checked before it is used.
        let map = unsafe { memmap2::MmapMut::map_mut(file) }.map_err(io_at("mmap", path))?;
        let _ = map.advise(Advice::Random);
        Ok(MappedMut(Some(map)))
    }

    /// Maps a scratch file for reading and writing: one this process created in its private
    /// temporary directory (`otsctl import-otsd`'s row index) and sized with `fallocate`.
    pub fn scratch(file: &File, path: &Path) -> Result<MappedMut, LogError> {
        let len = file.metadata().map_err(io_at("stat", path))?.len();
        if len == 0 {
            return Ok(MappedMut(None));
        }
        // SAFETY: the file was created by this process inside a temporary directory no other
        // program is told about, and allocated with `fallocate` before mapping, so nobody else
        // truncates or writes it while the map lives and stores into it cannot fault for lack of
        // space. Only this map reads and writes it.
        let map = unsafe { memmap2::MmapMut::map_mut(file) }.map_err(io_at("mmap", path))?;
        let _ = map.advise(Advice::Random);
        Ok(MappedMut(Some(map)))
    }

    /// Writes the dirty pages back and waits for them (`msync`).
    pub fn flush(&self) -> std::io::Result<()> {
        self.0.as_ref().map_or(Ok(()), |m| m.flush())
    }
}

impl Deref for MappedMut {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl std::ops::DerefMut for MappedMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
    }
}

/// Asks the CPU to bring the cache line holding `bytes[at]` in ahead of its use: a hint, which
/// never faults and does nothing for an index out of range (or off x86-64). The bulk inserts into
/// the projection's hash tables prefetch the home slots of the next keys, so that their cache and
/// TLB misses overlap instead of coming one after the other.
pub fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing into the program and cannot fault; the pointer is
        // to a byte of a live slice all the same.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast()) }
    }
}
