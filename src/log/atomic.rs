//! Whole-file writes that a crash leaves either old or new, never torn: write `NAME.tmp`, fsync
//! it, rename it over `NAME`, fsync the directory. The one implementation for files outside the
//! log's segments (the projection checkpoint, a mirror's index and segments); the log writer's own
//! seal goes through [`super::Storage`] so that fault tests can break it.
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed step of a file write: which operation, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct FileIoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> FileIoError + 'p {
    move |source| FileIoError {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FileIoError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(at("create", &tmp))?;
    file.write_all(bytes).map_err(at("write", &tmp))?;
    file.sync_all().map_err(at("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(at("rename", &tmp))?;
    sync_dir(dir)
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileIoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "f", b"old contents").unwrap();
        write_atomically(dir.path(), "f", b"new").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        assert!(!dir.path().join("f.tmp").exists());
        let err = write_atomically(&dir.path().join("missing"), "f", b"x").unwrap_err();
        assert_eq!(err.op, "create");
    }
}
