//! The debug file (`--debug-file`), rotated by size as the Python otsd's (Python's
//! `logging.handlers.RotatingFileHandler`), so an operator's log-reading habits and tools keep
//! working after the switch:
//!
//! - before a record is written, if the file's size plus the record's length would reach
//!   `max_bytes`, the file is rotated first: `FILE.(N-1)` becomes `FILE.N` (the oldest is removed),
//!   ..., `FILE.1` becomes `FILE.2`, `FILE` becomes `FILE.1`, and a new `FILE` is started;
//! - `max_bytes = 0` or `backup_count = 0` never rotates (the file grows, as in Python);
//! - a file that is not a regular file (`/dev/null`, a FIFO) is never rotated (Python's bpo-45401);
//! - an empty file is never rotated, so a record longer than `max_bytes` cannot push the real
//!   backups out with empty files (newer Pythons do the same; 3.11 would rotate).
//!
//! A record is one `write` call: `tracing-subscriber` formats each event into a buffer and writes
//! it at once, so a record is never split across two files. Memory: one open file handle.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How the debug file rotates (`--debug-file-max-size`, `--debug-file-backup-count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub backup_count: u32,
}

/// An append-only file that rotates itself as [`Rotation`] says.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    /// Bytes in `file` (its length when opened plus what was written since).
    len: u64,
}

impl RotatingFile {
    /// Opens (creating it if needed) `path` for appending.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            rotation,
            file,
            len,
        })
    }

    fn should_rotate(&self, record_len: u64) -> bool {
        let Rotation {
            max_bytes,
            backup_count,
        } = self.rotation;
        max_bytes > 0
            && backup_count > 0
            && self.len > 0
            && self.len.saturating_add(record_len) >= max_bytes
            && std::fs::metadata(&self.path).map_or(true, |m| m.is_file())
    }

    /// Shifts the old files up by one and starts a new, empty `path`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for i in (1..self.rotation.backup_count).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.len = self.file.metadata()?.len();
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.should_rotate(buf.len() as u64) {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `FILE.i`.
pub fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_before_a_record_would_reach_the_limit_and_keeps_backup_count_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debug.log");
        let rotation = Rotation {
            max_bytes: 10,
            backup_count: 2,
        };
        let mut f = RotatingFile::open(&path, rotation).unwrap();
        f.write_all(b"aaaa\n").unwrap(); // 5 bytes
        f.write_all(b"bbb\n").unwrap(); // 5 + 4 = 9 < 10: same file
        assert_eq!(read(&path), "aaaa\nbbb\n");
        f.write_all(b"c\n").unwrap(); // 9 + 2 >= 10: rotate first
        assert_eq!(read(&path), "c\n");
        assert_eq!(read(&numbered(&path, 1)), "aaaa\nbbb\n");
        f.write_all(b"dddddddd\n").unwrap(); // 2 + 9 >= 10
        f.write_all(b"eeeeeeeee\n").unwrap(); // 9 + 10 >= 10
        assert_eq!(read(&path), "eeeeeeeee\n");
        assert_eq!(read(&numbered(&path, 1)), "dddddddd\n");
        assert_eq!(read(&numbered(&path, 2)), "c\n");
        assert!(!numbered(&path, 3).exists(), "backup_count 2 keeps two");
    }

    #[test]
    fn zero_size_or_zero_backups_never_rotates_and_reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        for (max_bytes, backup_count) in [(0, 3), (4, 0)] {
            let path = dir.path().join(format!("{max_bytes}-{backup_count}.log"));
            let rotation = Rotation {
                max_bytes,
                backup_count,
            };
            let mut f = RotatingFile::open(&path, rotation).unwrap();
            f.write_all(b"one\n").unwrap();
            drop(f);
            let mut f = RotatingFile::open(&path, rotation).unwrap();
            f.write_all(b"two\n").unwrap();
            assert_eq!(read(&path), "one\ntwo\n");
            assert!(!numbered(&path, 1).exists());
        }
    }

    #[test]
    fn a_record_longer_than_the_limit_does_not_rotate_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debug.log");
        let rotation = Rotation {
            max_bytes: 4,
            backup_count: 1,
        };
        let mut f = RotatingFile::open(&path, rotation).unwrap();
        f.write_all(b"longer than four\n").unwrap();
        assert!(!numbered(&path, 1).exists());
        f.write_all(b"x\n").unwrap();
        assert_eq!(read(&numbered(&path, 1)), "longer than four\n");
        assert_eq!(read(&path), "x\n");
    }
}
