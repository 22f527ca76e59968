//! Every entry of one LevelDB table file (`NNNNNN.ldb`), read straight from its bytes, so that
//! `otsctl import-otsd` can read a database's tables in parallel (rusty-leveldb reads a database
//! only through one merging iterator, about 1–7 µs a row).
//!
//! The table format (google/leveldb `doc/table_format.md`), all integers little-endian:
//!
//! ```text
//! table   = data block* meta block* metaindex block, index block, footer
//! footer  = varint64 metaindex offset, varint64 size, varint64 index offset, varint64 size,
//!           zero padding to 40 bytes, u64 magic 0xdb4775248b80fb57           (48 bytes)
//! block   = entries, u32 restart offsets*, u32 restart count; then a 5-byte trailer:
//!           u8 compression (0 none, 1 Snappy), u32 masked CRC-32C of contents and type byte
//! entry   = varint32 shared key bytes, varint32 unshared, varint32 value length,
//!           unshared key bytes, value
//! ```
//!
//! Index entries' values are the block handles (`varint64 offset, varint64 size`) of the data
//! blocks, in key order. A data entry's key is an internal key: the user key followed by a u64
//! of `sequence << 8 | type` (type 1 a value, 0 a deletion).
//!
//! Checksums are not verified, as LevelDB itself does not by default (`ReadOptions::
//! verify_checksums` is false); every length and offset is bounds-checked, so a damaged table
//! gives a [`TableError`] naming the file and offset, never a panic or a read out of bounds.
use std::path::PathBuf;

/// Bytes of the footer at the end of every table.
pub const FOOTER_LEN: usize = 48;
/// The footer's last 8 bytes.
pub const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Bytes after each block's contents: compression type and checksum.
pub const BLOCK_TRAILER_LEN: usize = 5;
/// Bytes of an internal key's `sequence << 8 | type` suffix.
pub const TAG_LEN: usize = 8;
/// Largest block decompressed (LevelDB writes blocks of about 4 KiB).
pub const MAX_BLOCK_LEN: usize = 64 << 20;

const NO_COMPRESSION: u8 = 0;
const SNAPPY: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[error("LevelDB table {}, offset {offset}: {why}", path.display())]
pub struct TableError {
    pub path: PathBuf,
    pub offset: usize,
    pub why: String,
}

/// One entry of a table: user key, `sequence << 8 | type`, value.
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub tag: u64,
    pub value: &'a [u8],
}

/// Reads varints and slices off a byte string, failing on a short read.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
}

/// Calls `each` for every entry of the table `bytes` (the whole file), in the table's order.
pub fn for_each_entry(
    bytes: &[u8],
    path: &std::path::Path,
    each: &mut dyn FnMut(Entry<'_>),
) -> Result<(), TableError> {
    let err = |offset: usize, why: &str| TableError {
        path: path.to_owned(),
        offset,
        why: why.to_owned(),
    };
    let footer_at = bytes
        .len()
        .checked_sub(FOOTER_LEN)
        .ok_or_else(|| err(0, "shorter than a footer"))?;
    let footer = &bytes[footer_at..];
    let magic = u64::from_le_bytes(footer[40..].try_into().unwrap_or_default());
    if magic != TABLE_MAGIC {
        return Err(err(footer_at + 40, "bad magic (not a LevelDB table)"));
    }
    let mut f = Cursor {
        bytes: &footer[..40],
        pos: 0,
    };
    let handle = |c: &mut Cursor<'_>| Some((c.varint()?, c.varint()?));
    let (_meta, index) = match (handle(&mut f), handle(&mut f)) {
        (Some(m), Some(i)) => (m, i),
        _ => return Err(err(footer_at, "bad block handle in the footer")),
    };
    let mut scratch = Vec::new();
    let index_block = block(bytes, index, &mut scratch).map_err(|w| err(index.0 as usize, w))?;
    let mut data_scratch = Vec::new();
    let mut failure = None;
    entries(index_block, &mut |_, handle_bytes| {
        if failure.is_some() {
            return;
        }
        let mut c = Cursor {
            bytes: handle_bytes,
            pos: 0,
        };
        let Some(h) = handle(&mut c) else {
            failure = Some(err(index.0 as usize, "bad block handle in the index"));
            return;
        };
        let data = match block(bytes, h, &mut data_scratch) {
            Ok(d) => d,
            Err(w) => {
                failure = Some(err(h.0 as usize, w));
                return;
            }
        };
        let r = entries(data, &mut |key, value| {
            if failure.is_some() {
                return;
            }
            let Some(split) = key.len().checked_sub(TAG_LEN) else {
                failure = Some(err(h.0 as usize, "internal key shorter than its tag"));
                return;
            };
            let tag = u64::from_le_bytes(key[split..].try_into().unwrap_or_default());
            each(Entry {
                key: &key[..split],
                tag,
                value,
            });
        });
        if let Err(w) = r {
            failure = Some(err(h.0 as usize, w));
        }
    })
    .map_err(|w| err(index.0 as usize, w))?;
    failure.map_or(Ok(()), Err)
}

/// The contents of the block at `(offset, size)`, decompressed into `scratch` when needed (the
/// buffer is kept for the next block).
fn block<'a>(
    bytes: &'a [u8],
    (offset, size): (u64, u64),
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], &'static str> {
    let (offset, size) = (
        usize::try_from(offset).map_err(|_| "offset")?,
        usize::try_from(size).map_err(|_| "size")?,
    );
    let end = offset
        .checked_add(size)
        .filter(|&e| e + BLOCK_TRAILER_LEN <= bytes.len())
        .ok_or("block handle past the end of the table")?;
    let contents = &bytes[offset..end];
    match bytes[end] {
        NO_COMPRESSION => Ok(contents),
        SNAPPY => {
            let n = snap::raw::decompress_len(contents).map_err(|_| "bad Snappy block")?;
            if n > MAX_BLOCK_LEN {
                return Err("block larger than MAX_BLOCK_LEN");
            }
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            let n = snap::raw::Decoder::new()
                .decompress(contents, scratch)
                .map_err(|_| "bad Snappy block")?;
            Ok(&scratch[..n])
        }
        _ => Err("unknown block compression type"),
    }
}

/// Calls `each(key, value)` for every entry of a block, keys rebuilt from their shared prefixes.
fn entries(block: &[u8], each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), &'static str> {
    let n = block
        .len()
        .checked_sub(4)
        .ok_or("block shorter than its restart count")?;
    let restarts = u32::from_le_bytes(block[n..].try_into().unwrap_or_default()) as usize;
    let end = restarts
        .checked_mul(4)
        .and_then(|r| n.checked_sub(r))
        .ok_or("restart array larger than the block")?;
    let mut c = Cursor {
        bytes: &block[..end],
        pos: 0,
    };
    let mut key = Vec::with_capacity(128);
    while c.pos < end {
        let (shared, unshared, vlen) = match (c.varint(), c.varint(), c.varint()) {
            (Some(s), Some(u), Some(v)) => (s as usize, u as usize, v as usize),
            _ => return Err("truncated entry header"),
        };
        if shared > key.len() {
            return Err("entry shares more key bytes than the previous key has");
        }
        key.truncate(shared);
        key.extend_from_slice(c.take(unshared).ok_or("truncated key")?);
        let value = c.take(vlen).ok_or("truncated value")?;
        each(&key, value);
    }
    Ok(())
}
