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

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}
