//! Read-only memory maps of sealed segments, and the maps and cache hints of
//! `otsctl import-otsd`'s scratch tables. The only module allowed `unsafe`.
#![allow(unsafe_code)]
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::AtomicU64;

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

    /// Drops this process's mapping of the pages of `offset..offset + len` (clamped to the
    /// map): what they hold stays in the file's page cache (dirty pages included, written back
    /// as any), and the next access maps them again. Builders that sweep a large table call it
    /// behind their sweep, so that the process's resident size stays bounded by what it is
    /// working on rather than growing to the whole table. A hint: a failure is ignored.
    pub fn release(&self, offset: usize, len: usize) {
        let Some(map) = &self.0 else { return };
        let offset = offset.min(map.len());
        let len = len.min(map.len() - offset);
        if len == 0 {
            return;
        }
        // SAFETY: the map is a shared map of a file (never private or anonymous), for which
        // MADV_DONTNEED only unmaps pages: their contents, dirty or not, stay in the page cache
        // and are read back on the next access, so no byte any reference can see changes.
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
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

/// Anonymous memory for a large scratch table (`otsctl import-otsd`'s rows): reserved, not
/// committed (`MAP_NORESERVE`, so only the pages written take memory), and advised to use
/// transparent huge pages, which cut page faults while it fills and TLB misses on random reads.
#[derive(Debug)]
pub struct Anon(memmap2::MmapMut);

impl Anon {
    /// `len` bytes of zeros (at least one).
    pub fn new(len: usize) -> std::io::Result<Anon> {
        let map = MmapOptions::new()
            .len(len.max(1))
            .no_reserve_swap()
            .map_anon()?;
        // A hint only; without huge pages the memory works the same.
        let _ = map.advise(Advice::HugePage);
        Ok(Anon(map))
    }
}

impl Deref for Anon {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Anon {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// A table of 64-bit slots that several threads fill at once (`otsctl import-otsd`'s row index),
/// in anonymous memory (huge pages advised) or in a mapped scratch file. Its bytes are reached
/// only as [`AtomicU64`]s, never as plain bytes.
#[derive(Debug)]
pub struct Slots(memmap2::MmapMut);

impl Slots {
    /// `n` zero slots in anonymous memory (`n >= 1`).
    pub fn anonymous(n: usize) -> std::io::Result<Slots> {
        let len = n
            .max(1)
            .checked_mul(8)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        let map = MmapOptions::new().len(len).no_reserve_swap().map_anon()?;
        // A hint only; without huge pages the memory works the same.
        let _ = map.advise(Advice::HugePage);
        Ok(Slots(map))
    }

    /// Maps a scratch file of zeros (a multiple of 8 bytes, at least 8) created by this process in
    /// its private temporary directory and sized with `fallocate`.
    pub fn scratch(file: &File, path: &Path) -> Result<Slots, LogError> {
        let len = file.metadata().map_err(io_at("stat", path))?.len();
        if len < 8 || len % 8 != 0 {
            let e = std::io::Error::other("a slot file must be a non-zero multiple of 8 bytes");
            return Err(io_at("mmap", path)(e));
        }
        // SAFETY: the file was created by this process inside a temporary directory no other
        // program is told about, and allocated with `fallocate` before mapping, so nobody else
        // truncates or writes it while the map lives and stores into it cannot fault for lack of
        // space. Only this map reads and writes it.
        let map = unsafe { memmap2::MmapMut::map_mut(file) }.map_err(io_at("mmap", path))?;
        let _ = map.advise(Advice::Random);
        Ok(Slots(map))
    }
}

impl Deref for Slots {
    type Target = [AtomicU64];

    fn deref(&self) -> &[AtomicU64] {
        let bytes: &[u8] = &self.0;
        // SAFETY: the map is page-aligned (so aligned for `AtomicU64`), its length is a multiple
        // of 8 (checked or made so above) and it lives as long as `self`. `AtomicU64` has the
        // size and layout of `u64`, and every byte is valid for it. The map is owned here and
        // never handed out as bytes, so all access to it, from any thread, goes through these
        // atomics: shared mutation through `&self` is what atomics allow.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<AtomicU64>(), bytes.len() / 8) }
    }
}

/// Asks the CPU to bring the cache line holding `*item` closer, so that a read of it soon does
/// not wait for memory: lets a loop overlap the cache misses of random look-ups.
#[inline(always)]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, reads nothing into the program and
    // writes nothing; the pointer comes from a live reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<{ _MM_HINT_T0 }>(std::ptr::from_ref(item).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// [`prefetch`] of `bytes[at]`: does nothing for an index out of range. The bulk inserts into the
/// projection's hash tables prefetch the home slots of the next keys, so that their cache and TLB
/// misses overlap instead of coming one after the other.
#[inline(always)]
pub fn prefetch_byte(bytes: &[u8], at: usize) {
    if let Some(b) = bytes.get(at) {
        prefetch(b);
    }
}
