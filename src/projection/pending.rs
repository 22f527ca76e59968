//! Entries held back from an on-disk hash table during a bulk rebuild, sorted by where they go.
//!
//! Inserting one entry at a time into a table of gigabytes writes its pages in random order, and
//! the kernel's writeback and the next commit's sync rewrite nearly every page of it again and
//! again (a 100-million-round rebuild did more system than user work that way). A bulk rebuild
//! instead appends each entry to the file of its *part*, a run of consecutive home slots of the
//! table, and [`Pending::drain`] feeds the table part by part when the rebuild commits: the
//! table's pages are each written about once per commit, in order, and only the part being
//! filled (16 MiB) is mapped at a time. A commitment index rebuilt from the round table (when it
//! grows) is filled the same way, from `index.spill/`.
//!
//! A part file is a run of 16-byte entries, `home u64 LE | value u64 LE`: the key bits whose low
//! bits are the home slot, and what the table packs beside them (see the callers). Files are
//! scratch, never synced: a crash leaves a directory the next load removes, and the log folds
//! those rounds again. Within a part, entries keep the order they were pushed in, so a key's
//! entries (all in one part) come in round order.
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bytes per entry in a part file.
pub const ENTRY_LEN: usize = 16;
/// Buffered bytes per part file while pushing (at most [`MAX_PARTS`] of them per table).
const WRITE_BUFFER: usize = 32 << 10;
/// Entries read from a part file at a time while draining.
const READ_ENTRIES: usize = 4096;
/// Most parts a table is cut into.
pub const MAX_PARTS: u64 = 256;

/// One held-back entry: the key bits (the home slot is their low bits) and the packed rest.
pub type Entry = (u64, u64);

/// What [`Pending::drain`] hands its caller.
pub enum Step<'a> {
    /// Entries of the current part, in the order they were pushed.
    Entries(&'a [Entry]),
    /// The next part's entries have their homes in these slots: a hint, for reading them ahead
    /// (the first part's come before its entries).
    Ahead(Range<u64>),
    /// No later entry has its home in these slots of the table: the part behind the one being
    /// filled (slots displaced past a part's end land in the next one). A hint, for releasing
    /// and writing back what was filled.
    Done(Range<u64>),
}

/// The held-back entries of one table of `slots` slots, cut into parts of `part_slots`.
#[derive(Debug)]
pub struct Pending {
    dir: PathBuf,
    slots: u64,
    part_slots: u64,
    writers: Vec<BufWriter<File>>,
    entries: u64,
}

/// The part size for a table of `slots` slots of `slot_len` bytes: `part_bytes`, or more so that
/// there are at most [`MAX_PARTS`] parts.
pub fn part_slots(slots: u64, slot_len: u64, part_bytes: u64) -> u64 {
    (part_bytes / slot_len)
        .max(slots / MAX_PARTS)
        .min(slots)
        .max(1)
}

impl Pending {
    /// Starts holding back entries for a table of `slots` (a power of two) in parts of
    /// `part_slots` (a power of two), under `dir`, which is emptied first.
    pub fn create(dir: &Path, slots: u64, part_slots: u64) -> std::io::Result<Pending> {
        remove_dir(dir)?;
        fs::create_dir_all(dir)?;
        let writers = (0..slots / part_slots)
            .map(|p| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(dir.join(p.to_string()))
                    .map(|f| BufWriter::with_capacity(WRITE_BUFFER, f))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pending {
            dir: dir.to_path_buf(),
            slots,
            part_slots,
            writers,
            entries: 0,
        })
    }

    /// The table size the parts are cut for.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Holds back an entry whose home slot is the low bits of `home`.
    pub fn push(&mut self, home: u64, value: u64) -> std::io::Result<()> {
        let part = ((home & (self.slots - 1)) / self.part_slots) as usize;
        let mut e = [0u8; ENTRY_LEN];
        e[..8].copy_from_slice(&home.to_le_bytes());
        e[8..].copy_from_slice(&value.to_le_bytes());
        self.entries += 1;
        self.writers[part].write_all(&e)
    }

    /// Feeds every entry to `each`, part after part, into a table of `target_slots` slots (the
    /// size the parts were cut for, or a multiple of it: a table grown since, where a part's
    /// entries land in that many regions), then removes the files. `each` also hears which
    /// slots no later entry will have its home in ([`Step::Done`]). `io_err` says which I/O
    /// failed.
    pub fn drain<E>(
        self,
        target_slots: u64,
        io_err: impl Fn(std::io::Error) -> E,
        mut each: impl FnMut(Step<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Pending {
            dir,
            slots,
            part_slots,
            writers,
            ..
        } = self;
        let copies = (target_slots / slots).max(1);
        let regions = |part: u64| {
            (0..copies).map(move |c| {
                let start = c * slots + part * part_slots;
                start..start + part_slots
            })
        };
        let mut chunk = Vec::with_capacity(READ_ENTRIES);
        let parts = writers.len() as u64;
        for r in regions(0) {
            each(Step::Ahead(r))?;
        }
        for (p, w) in writers.into_iter().enumerate() {
            if p as u64 + 1 < parts {
                for r in regions(p as u64 + 1) {
                    each(Step::Ahead(r))?;
                }
            }
            let mut file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
            file.seek(SeekFrom::Start(0)).map_err(&io_err)?;
            let mut reader = BufReader::with_capacity(READ_ENTRIES * ENTRY_LEN, file);
            while read_chunk(&mut reader, &mut chunk).map_err(&io_err)? {
                each(Step::Entries(&chunk))?;
            }
            if p > 0 {
                for r in regions(p as u64 - 1) {
                    each(Step::Done(r))?;
                }
            }
        }
        remove_dir(&dir).map_err(io_err)
    }
}

/// Reads up to [`READ_ENTRIES`] entries into `chunk`; false at the end of the file.
fn read_chunk(reader: &mut impl Read, chunk: &mut Vec<Entry>) -> std::io::Result<bool> {
    chunk.clear();
    let mut e = [0u8; ENTRY_LEN];
    while chunk.len() < READ_ENTRIES {
        match reader.read_exact(&mut e) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(err),
        }
        let (mut home, mut value) = ([0u8; 8], [0u8; 8]);
        home.copy_from_slice(&e[..8]);
        value.copy_from_slice(&e[8..]);
        chunk.push((u64::from_le_bytes(home), u64::from_le_bytes(value)));
    }
    Ok(!chunk.is_empty())
}

/// Removes `dir` and what it holds, if it is there.
pub fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry comes back once, in its part's order, parts in slot order, and the parts
    /// behind are announced done only after their own entries (in every region of a table grown
    /// since the cut).
    #[test]
    fn entries_come_back_by_part_in_push_order() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("p");
        let (slots, part) = (64u64, 16u64);
        let mut pending = Pending::create(&spill, slots, part).unwrap();
        let mut pushed = Vec::new();
        for i in 0..1000u64 {
            let home = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            pending.push(home, i).unwrap();
            pushed.push((home, i));
        }
        assert_eq!(pending.entries(), 1000);
        let mut got: Vec<Entry> = Vec::new();
        let mut done: Vec<Range<u64>> = Vec::new();
        pending
            .drain(
                slots * 2,
                |e| e,
                |step| {
                    match step {
                        Step::Entries(es) => {
                            for e in es {
                                let home = e.0 & (slots - 1);
                                for d in &done {
                                    assert!(!d.contains(&home) && !d.contains(&(home + slots)));
                                }
                                got.push(*e);
                            }
                        }
                        Step::Done(r) => done.push(r),
                        Step::Ahead(_) => {}
                    }
                    Ok::<(), std::io::Error>(())
                },
            )
            .unwrap();
        assert!(!spill.exists(), "the part files are removed");
        let mut want = pushed.clone();
        want.sort_by_key(|&(home, i)| ((home & (slots - 1)) / part, i));
        assert_eq!(got, want);
        assert_eq!(done, vec![0..16, 64..80, 16..32, 80..96, 32..48, 96..112]);
    }
}
