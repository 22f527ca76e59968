//! `otsctl import-otsd`: a new otsd calendar directory from a Python otsd calendar directory.
//!
//! The Python directory is only read (its LevelDB through a copy). The new calendar is built in
//! `<DIR>.import-tmp` beside `DIR` and renamed to `DIR` only when complete, so an interrupted
//! import leaves no calendar that otsd would start on; running it again removes that leftover
//! (recognized by its [`IN_PROGRESS`] marker) and starts over.
//!
//! What it writes: `uri`, `donation_addr` and `hmac-key` copied byte for byte (the key exactly as
//! the Python server reads it), and a log holding one `CommitmentImported` event per journal
//! record, in journal order, so round `i` is journal index `i`.
//!
//! How, on every core: the database is read into a row table ([`ProofDb::build`], tables read in
//! parallel); then one walking thread per core takes every `threads`-th chunk of
//! [`CHUNK_RECORDS`] journal records and builds its events ([`super::chunk`]); this thread takes
//! the chunks back in journal order, gives the events their sequence numbers and appends them to
//! the log in records of [`BATCH_EVENTS`] events, about [`GROUP_BYTES`] per write, without a
//! `fdatasync` each: the new log is synced once at the end (and each full segment when it is
//! sealed, by a background thread: [`SyncLater`]), and every sync has completed before the
//! directory is renamed into place. Memory besides the row table: at most two chunks per walking
//! thread.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::chunk::{Chunk, ChunkBuilder, Found, CHUNK_RECORDS, PLAIN, SUFFIX};
use super::db::{self, DbError, ProofDb, TableProgress};
use super::journal::{self, Journal, JournalError};
use super::walk::Walker;
use crate::calendar::commitment::COMMITMENT_LEN;
use crate::calendar::dir::{CalendarDir, DirError};
use crate::events::codec;
use crate::log::{LogError, LogKey, SyncLater, Writer, WriterOptions};

pub use super::chunk::{Listed, MAX_LISTED, MIN_SHARED_SUFFIX};

/// Events per log record.
pub const BATCH_EVENTS: usize = 1024;
/// Bytes of records written with one `write`.
pub const GROUP_BYTES: usize = 2 << 20;
/// Most walking threads.
pub const MAX_WALKERS: usize = 8;
/// Shared proof ends remembered across chunks (one stamping transaction's commitments are
/// neighbours, so a transaction cut by a chunk boundary repeats the previous chunk's last one).
const RECENT_SUFFIXES: usize = 4;
/// Marker file of an import under way in the temporary directory.
pub const IN_PROGRESS: &str = ".otsd-import-in-progress";
/// Name of the database copy inside the temporary directory.
const DB_COPY: &str = "python-db.copy";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: already exists; import-otsd writes a new calendar only", .0.display())]
    Exists(PathBuf),
    #[error("{}: exists and is not an interrupted import-otsd; remove it or choose another DIR", .0.display())]
    Leftover(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Python calendar: {0}")]
    Source(#[from] DirError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the new log: {0}")]
    Log(#[from] LogError),
    #[error("encoding an event: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("a walking thread stopped: {0}")]
    Walker(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What an import found and wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Journal records imported (one round each).
    pub commitments: u64,
    /// With a complete tree in the database: served with the Python server's exact answer.
    pub complete: u64,
    /// Without: pending, stamped by otsd's stamper.
    pub pending: u64,
    /// Legacy 36-byte records (zero MAC).
    pub legacy: u64,
    /// 44-byte records whose MAC does not verify under `hmac-key` (imported all the same: the
    /// Python server anchors them too); the first [`MAX_LISTED`] are listed.
    pub bad_macs: u64,
    pub bad_mac_records: Vec<Listed>,
    /// Bytes of a torn last journal record (a write that never completed; not imported).
    pub torn_tail_bytes: u64,
    pub torn_tail_records: u64,
    /// Records whose tree has a row the Python server cannot use (its request dies): pending.
    pub unusable_trees: u64,
    pub unusable_tree_records: Vec<Listed>,
    /// `journal.known-good`, and pending records before it (the Python stamper never anchored
    /// them; otsd will).
    pub known_good: u64,
    pub pending_before_known_good: u64,
    /// Complete records after the first pending one: the first stamping transaction covers them
    /// again (their imported proof is still what is served).
    pub complete_after_first_pending: u64,
    /// Database rows read while rebuilding trees, rows in the database, and rows no journal
    /// commitment reaches.
    pub rows_read: u64,
    pub db_rows: u64,
    pub unreached_rows: u64,
    /// Bytes of the database copied, and of its tables hard-linked instead (LevelDB never
    /// changes a table once written).
    pub db_bytes_copied: u64,
    pub db_bytes_linked: u64,
    /// Seconds spent copying the database, and reading its rows into the sorted row table.
    pub copy_seconds: f64,
    pub row_table_seconds: f64,
    /// `ProofSuffixImported` events written: proof ends shared by the commitments of a stamping
    /// transaction.
    pub shared_suffixes: u64,
    /// Log events written, and where the calendar now is.
    pub events_written: u64,
    pub calendar: PathBuf,
    pub seconds: f64,
    pub commitments_per_second: f64,
}

/// Progress of an import, for a bar.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub phase: &'static str,
    /// What `done` and `total` count.
    pub unit: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Imports the Python calendar `src` into the new calendar directory `dst`.
pub fn import_otsd(
    src: &Path,
    dst: &Path,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    if dst.exists() {
        return Err(ImportError::Exists(dst.to_owned()));
    }
    let source = CalendarDir::load(src)?;
    let tmp = staging_dir(dst)?;
    write_calendar_files(src, &tmp)?;
    let mut report = ImportReport {
        calendar: dst.to_owned(),
        known_good: journal::known_good(src)?,
        ..ImportReport::default()
    };
    progress(ImportProgress {
        phase: "copying the database",
        unit: "",
        done: 0,
        total: 0,
    });
    let copy_started = Instant::now();
    let db_copy = tmp.join(DB_COPY);
    (report.db_bytes_copied, report.db_bytes_linked) = db::copy_db(&src.join("db"), &db_copy)?;
    report.copy_seconds = copy_started.elapsed().as_secs_f64();
    let journal = Journal::open(&src.join("journal"))?;
    report.torn_tail_bytes = journal.torn_tail_bytes;
    report.torn_tail_records = u64::from(journal.torn_tail_bytes > 0);
    let key = LogKey::derive(&source.hmac_key);
    let log_dir = tmp.join(crate::calendar::dir::LOG_DIR);
    let (storage, syncer) = SyncLater::new_locked(&log_dir)?;
    let (mut writer, _) = Writer::open_with(Box::new(storage), key, WriterOptions::default())?;
    let scratch = db_copy.with_extension("rows");
    std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
    let table_started = Instant::now();
    let db = build_row_table(&db_copy, &scratch, progress)?;
    report.row_table_seconds = table_started.elapsed().as_secs_f64();
    let walk = Walk {
        journal: &journal,
        db: &db,
        hmac_key: &source.hmac_key,
        known_good: report.known_good,
    };
    walk.run(&mut writer, &mut report, progress)?;
    writer.sync()?;
    drop(writer);
    syncer.finish().map_err(io(&log_dir))?;
    drop(db);
    std::fs::remove_dir_all(&db_copy).map_err(io(&tmp))?;
    std::fs::remove_dir_all(&scratch).map_err(io(&tmp))?;
    std::fs::remove_file(tmp.join(IN_PROGRESS)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, dst).map_err(io(dst))?;
    sync_parent(dst)?;
    CalendarDir::load(dst)?;
    report.seconds = started.elapsed().as_secs_f64();
    report.commitments_per_second = report.commitments as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// [`ProofDb::build`] on its own thread, showing the tables read meanwhile.
fn build_row_table(
    copy: &Path,
    scratch: &Path,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ProofDb, ImportError> {
    use std::sync::atomic::Ordering::Relaxed;
    let tables = TableProgress::default();
    std::thread::scope(|s| {
        let build = std::thread::Builder::new()
            .name("import-rows".into())
            .spawn_scoped(s, || {
                ProofDb::build(copy, scratch, &tables, db::memory_budget())
            })
            .map_err(io(scratch))?;
        let mut last_tick = Instant::now();
        while !build.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                progress(ImportProgress {
                    phase: "reading the database",
                    unit: "tables",
                    done: tables.read.load(Relaxed),
                    total: tables.total.load(Relaxed),
                });
            }
        }
        let db = build
            .join()
            .map_err(|_| ImportError::Walker("the row table's thread panicked".into()))??;
        Ok(db)
    })
}

/// The journal walk: walking threads build chunks, this thread writes them in order.
struct Walk<'a> {
    journal: &'a Journal,
    db: &'a ProofDb,
    hmac_key: &'a [u8],
    known_good: u64,
}

/// What a walking thread gives back when done: its bitmap of rows read, and their count.
type Reached = (Vec<u64>, u64);

impl Walk<'_> {
    fn run(
        &self,
        writer: &mut Writer,
        report: &mut ImportReport,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<(), ImportError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WALKERS);
        let chunks = (self.journal.records as usize).div_ceil(CHUNK_RECORDS);
        std::thread::scope(|s| {
            let mut receivers = Vec::with_capacity(threads);
            let mut workers = Vec::with_capacity(threads);
            for t in 0..threads {
                let (tx, rx) = mpsc::sync_channel::<Result<Chunk, ImportError>>(1);
                receivers.push(rx);
                let worker = std::thread::Builder::new()
                    .name(format!("import-walk-{t}"))
                    .spawn_scoped(s, move || self.walk_chunks(t, threads, chunks, &tx))
                    .map_err(|e| ImportError::Walker(e.to_string()))?;
                workers.push(worker);
            }
            let mut sink = Sink::new(writer);
            let mut last_tick = Instant::now();
            for c in 0..chunks {
                let chunk = receivers[c % threads]
                    .recv()
                    .map_err(|_| ImportError::Walker("it stopped early".into()))??;
                sink.chunk(&chunk)?;
                merge_found(report, chunk.found);
                if last_tick.elapsed() >= Duration::from_secs(1) || c + 1 == chunks {
                    last_tick = Instant::now();
                    progress(ImportProgress {
                        phase: "importing",
                        unit: "journal records",
                        done: report.commitments,
                        total: self.journal.records,
                    });
                }
            }
            sink.finish()?;
            report.events_written = sink.events;
            report.shared_suffixes = sink.suffixes;
            drop(receivers);
            let mut reached: Option<Vec<u64>> = None;
            for w in workers {
                let (bits, rows_read) = w
                    .join()
                    .map_err(|_| ImportError::Walker("it panicked".into()))??;
                report.rows_read += rows_read;
                match &mut reached {
                    None => reached = Some(bits),
                    Some(all) => all.iter_mut().zip(&bits).for_each(|(a, b)| *a |= b),
                }
            }
            report.db_rows = self.db.rows();
            report.unreached_rows = self.db.unreached(&reached.unwrap_or_default());
            Ok(())
        })
    }

    /// One walking thread: chunks `t`, `t + threads`, ... in order.
    fn walk_chunks(
        &self,
        t: usize,
        threads: usize,
        chunks: usize,
        tx: &mpsc::SyncSender<Result<Chunk, ImportError>>,
    ) -> Result<Reached, ImportError> {
        let walker = Walker::new(self.db);
        let mut builder = ChunkBuilder::new(walker, self.hmac_key, self.known_good);
        let mut buf = Vec::with_capacity(CHUNK_RECORDS * COMMITMENT_LEN);
        for c in (t..chunks).step_by(threads) {
            let first = (c * CHUNK_RECORDS) as u64;
            buf.resize(CHUNK_RECORDS * COMMITMENT_LEN, 0);
            let chunk = match self.journal.read_records(first, &mut buf) {
                Ok(_) => Ok(builder.build(first, &buf)),
                Err(e) => Err(ImportError::from(e)),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).is_err() || failed {
                break;
            }
        }
        let rows_read = builder.walker.rows_read;
        Ok((builder.walker.into_reached(), rows_read))
    }
}

/// Adds a chunk's counts (chunks come in journal order).
fn merge_found(r: &mut ImportReport, f: Found) {
    r.complete_after_first_pending += if r.pending > 0 {
        f.complete
    } else {
        f.complete_after_first_pending
    };
    r.commitments += f.commitments;
    r.complete += f.complete;
    r.pending += f.pending;
    r.legacy += f.legacy;
    r.bad_macs += f.bad_macs;
    r.unusable_trees += f.unusable_trees;
    r.pending_before_known_good += f.pending_before_known_good;
    for (into, from) in [
        (&mut r.bad_mac_records, f.bad_mac_records),
        (&mut r.unusable_tree_records, f.unusable_tree_records),
    ] {
        let room = MAX_LISTED.saturating_sub(into.len());
        into.extend(from.into_iter().take(room));
    }
}

/// Numbers the chunks' events and appends them to the log.
struct Sink<'w> {
    writer: &'w mut Writer,
    /// The next event's sequence number.
    seq: u64,
    /// The record being filled: events, and its payload.
    count: u32,
    payload: Vec<u8>,
    /// Records not yet written, and their bytes.
    group: Vec<(u32, Vec<u8>)>,
    group_bytes: usize,
    /// Payload buffers of records written, emptied for reuse (at most one group's).
    spare: Vec<Vec<u8>>,
    /// The last suffix events written (encoded) and their sequence numbers.
    recent: VecDeque<(Vec<u8>, u64)>,
    /// This chunk's suffix numbers -> sequence numbers.
    suffix_seqs: Vec<u64>,
    events: u64,
    suffixes: u64,
}

impl<'w> Sink<'w> {
    fn new(writer: &'w mut Writer) -> Sink<'w> {
        let seq = writer.next_seq();
        Sink {
            writer,
            seq,
            count: 0,
            payload: Vec::with_capacity(1 << 20),
            group: Vec::new(),
            group_bytes: 0,
            spare: Vec::new(),
            recent: VecDeque::with_capacity(RECENT_SUFFIXES + 1),
            suffix_seqs: Vec::new(),
            events: 0,
            suffixes: 0,
        }
    }

    fn chunk(&mut self, chunk: &Chunk) -> Result<(), ImportError> {
        self.suffix_seqs.clear();
        let mut start = 0usize;
        for &(end, kind) in &chunk.items {
            let end = end as usize;
            let Some(event) = chunk.bytes.get(start..end) else {
                return Err(ImportError::Walker(
                    "a chunk's event offsets are out of order".into(),
                ));
            };
            start = end;
            match kind {
                PLAIN => self.event(event, None)?,
                SUFFIX => {
                    let known = self.recent.iter().find(|(e, _)| e == event);
                    if let Some(&(_, seq)) = known {
                        self.suffix_seqs.push(seq);
                        continue;
                    }
                    let seq = self.seq;
                    self.event(event, None)?;
                    self.suffixes += 1;
                    self.suffix_seqs.push(seq);
                    if self.recent.len() >= RECENT_SUFFIXES {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((event.to_vec(), seq));
                }
                n => {
                    let Some(&seq) = self.suffix_seqs.get(n as usize) else {
                        return Err(ImportError::Walker(
                            "a commitment names a suffix not written before it".into(),
                        ));
                    };
                    self.event(event, Some(seq))?;
                }
            }
        }
        Ok(())
    }

    /// Frames one event (appending its `suffix_seq` field if given) into the current record.
    fn event(&mut self, event: &[u8], suffix_seq: Option<u64>) -> Result<(), ImportError> {
        let len = event.len() + suffix_seq.map_or(0, codec::suffix_seq_field_len);
        self.payload.extend_from_slice(&(len as u32).to_le_bytes());
        self.payload.extend_from_slice(event);
        if let Some(seq) = suffix_seq {
            codec::suffix_seq_field(&mut self.payload, seq);
        }
        self.count += 1;
        self.seq += 1;
        self.events += 1;
        if self.count as usize >= BATCH_EVENTS {
            self.close_record()?;
        }
        Ok(())
    }

    fn close_record(&mut self) -> Result<(), ImportError> {
        if self.count == 0 {
            return Ok(());
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(1 << 20));
        let payload = std::mem::replace(&mut self.payload, fresh);
        self.group_bytes += payload.len();
        self.group.push((self.count, payload));
        self.count = 0;
        if self.group_bytes >= GROUP_BYTES {
            self.write_group()?;
        }
        Ok(())
    }

    fn write_group(&mut self) -> Result<(), ImportError> {
        if !self.group.is_empty() {
            self.writer.append_framed_unsynced(&self.group)?;
            for (_, mut payload) in self.group.drain(..) {
                payload.clear();
                self.spare.push(payload);
            }
            self.group_bytes = 0;
        }
        Ok(())
    }

    /// Writes what is left; checks that the log numbered the events as this sink did.
    fn finish(&mut self) -> Result<(), ImportError> {
        self.close_record()?;
        self.write_group()?;
        let next = self.writer.next_seq();
        if next != self.seq {
            return Err(ImportError::Walker(format!(
                "the log is at seq {next}, the events were numbered up to {}",
                self.seq
            )));
        }
        Ok(())
    }
}

/// `<dst>.import-tmp`, new, with the in-progress marker; a leftover of an interrupted import is
/// removed first.
fn staging_dir(dst: &Path) -> Result<PathBuf, ImportError> {
    let mut name = dst
        .file_name()
        .ok_or_else(|| ImportError::Exists(dst.to_owned()))?
        .to_owned();
    name.push(".import-tmp");
    let tmp = dst.with_file_name(name);
    if tmp.exists() {
        if !tmp.join(IN_PROGRESS).exists() {
            return Err(ImportError::Leftover(tmp));
        }
        tracing::warn!(dir = %tmp.display(), "removing the leftover of an interrupted import");
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    std::fs::write(tmp.join(IN_PROGRESS), b"").map_err(io(&tmp))?;
    Ok(tmp)
}

/// `uri`, `donation_addr` and `hmac-key`, byte for byte (the key with mode 0600).
fn write_calendar_files(src: &Path, tmp: &Path) -> Result<(), ImportError> {
    use std::os::unix::fs::PermissionsExt;
    for name in ["uri", "donation_addr", "hmac-key"] {
        let (from, to) = (src.join(name), tmp.join(name));
        let bytes = std::fs::read(&from).map_err(io(&from))?;
        std::fs::write(&to, &bytes).map_err(io(&to))?;
        let mode = if name == "hmac-key" { 0o600 } else { 0o644 };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).map_err(io(&to))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(io(&to))?;
    }
    Ok(())
}

fn sync_parent(dst: &Path) -> Result<(), ImportError> {
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .map_err(io(parent))
}

/// The human report.
pub fn render(r: &ImportReport) -> String {
    let mut out = String::new();
    for l in &r.bad_mac_records {
        out.push_str(&format!(
            "[bad MAC] journal index {} {}: {}\n",
            l.index, l.commitment, l.detail
        ));
    }
    for l in &r.unusable_tree_records {
        out.push_str(&format!(
            "[unusable tree] journal index {} {}: {}\n",
            l.index, l.commitment, l.detail
        ));
    }
    out.push_str(&format!(
        "imported {} commitments into {}: {} complete (served as the Python calendar served them), {} pending (otsd stamps them), {} legacy 36-byte\n",
        r.commitments,
        r.calendar.display(),
        r.complete,
        r.pending,
        r.legacy
    ));
    out.push_str(&format!(
        "journal: {} MACs that do not verify (imported, as Python anchored them), {} torn tail record ({} bytes, not imported), known-good {} ({} pending before it), {} unusable trees\n",
        r.bad_macs, r.torn_tail_records, r.torn_tail_bytes, r.known_good, r.pending_before_known_good, r.unusable_trees
    ));
    out.push_str(&format!(
        "database: {} rows, {} read, {} unreachable from the journal; {} bytes copied and {} linked in {:.1}s, row table in {:.1}s ({:.0} rows/s)\n",
        r.db_rows, r.rows_read, r.unreached_rows, r.db_bytes_copied, r.db_bytes_linked, r.copy_seconds, r.row_table_seconds,
        r.db_rows as f64 / r.row_table_seconds.max(1e-9)
    ));
    if r.complete_after_first_pending > 0 {
        out.push_str(&format!(
            "note: {} complete commitments follow the first pending one; otsd's first stamping transaction covers them again\n",
            r.complete_after_first_pending
        ));
    }
    out.push_str(&format!(
        "{} events written in {:.1}s ({:.0} commitments/s)\nnext: fund the stamper (`otsctl address {}`); `otsctl replay {}` writes the projection checkpoint now (else otsd's first start folds the whole import); then start otsd on it\n",
        r.events_written,
        r.seconds,
        r.commitments_per_second,
        r.calendar.display(),
        r.calendar.display()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::mac::CommitmentMac;
    use crate::events::Event;
    use rusty_leveldb::{Options, DB};
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;

    fn sha(b: &[u8]) -> Vec<u8> {
        Sha256::digest(b).to_vec()
    }

    fn op_row(tag: u8, arg: Option<&[u8]>) -> Vec<u8> {
        let mut v = vec![0x00, 0x01, tag];
        if let Some(arg) = arg {
            crate::ots::ser::write_varbytes(&mut v, arg);
        }
        v
    }

    /// The rows Python's stamper writes for one transaction over `cs` (see pycal-gen).
    fn transaction(db: &mut DB, cs: &[Vec<u8>], tx: u8) {
        let mut level: Vec<Vec<u8>> = Vec::new();
        for c in cs {
            db.put(c, &op_row(0x08, None)).unwrap();
            level.push(sha(c));
        }
        while level.len() > 1 {
            let mut next = Vec::new();
            for pair in level.chunks(2) {
                if let [l, r] = pair {
                    db.put(l, &op_row(0xf0, Some(r))).unwrap();
                    db.put(r, &op_row(0xf1, Some(l))).unwrap();
                    let cat = [&l[..], &r[..]].concat();
                    db.put(&cat, &op_row(0x08, None)).unwrap();
                    next.push(sha(&cat));
                } else {
                    next.push(pair[0].clone());
                }
            }
            level = next;
        }
        let tip = level.pop().unwrap();
        let prefix = vec![tx; 60];
        db.put(&tip, &op_row(0xf1, Some(&prefix))).unwrap();
        let with_prefix = [&prefix[..], &tip].concat();
        db.put(&with_prefix, &op_row(0xf0, Some(&[1, 2, 3, 4])))
            .unwrap();
        let whole = [&with_prefix[..], &[1, 2, 3, 4]].concat();
        db.put(&whole, &op_row(0x08, None)).unwrap();
        let once = sha(&whole);
        db.put(&once, &op_row(0x08, None)).unwrap();
        let txid = sha(&once);
        let mut att = vec![0x01, 0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01, 0x03];
        att.extend_from_slice(&[0xa1, 0x86, 0x32, 0x00]);
        db.put(&txid, &att).unwrap();
    }

    /// The Python server's answer for `key`, straight from the database: the reference.
    fn python_answer(rows: &HashMap<Vec<u8>, Vec<u8>>, key: &[u8]) -> Option<Vec<u8>> {
        let (atts, ops) = db::parse_node(rows.get(key)?).unwrap();
        let items = atts.len() + ops.len();
        let mut out = Vec::new();
        for (i, att) in atts.iter().enumerate() {
            if i + 1 < items {
                out.push(0xff);
            }
            out.push(0x00);
            att.write(&mut out);
        }
        for (i, op) in ops.iter().enumerate() {
            if atts.len() + i + 1 < items {
                out.push(0xff);
            }
            op.write(&mut out);
            out.extend_from_slice(&python_answer(rows, &op.apply(key).unwrap())?);
        }
        Some(out)
    }

    /// A calendar of transactions of several sizes (one cut by a chunk boundary, one of a single
    /// commitment), pending, legacy and bad-MAC records: every event's proof, joined with its
    /// suffix, is the Python answer rebuilt from the database row by row; pending records have
    /// none; each transaction's suffix is written once.
    #[test]
    fn imported_proofs_equal_the_python_answers() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("python");
        std::fs::create_dir(&src).unwrap();
        let key = [7u8; 32];
        std::fs::write(src.join("hmac-key"), key).unwrap();
        std::fs::write(src.join("uri"), "http://127.0.0.1:1\n").unwrap();
        std::fs::write(src.join("donation_addr"), "bcrt1qx\n").unwrap();
        let opts = Options {
            compressor: 1,
            ..Options::default()
        };
        let mut db = DB::open(src.join("db"), opts).unwrap();
        let mut mac = CommitmentMac::new(&key);
        let n = CHUNK_RECORDS + 3000;
        let mut journal = Vec::new();
        let mut commitments = Vec::new();
        for i in 0..n {
            let root = <[u8; 32]>::try_from(sha(&i.to_le_bytes())).unwrap();
            let mut c = mac.commitment(1_600_000_000 + i as u32, &root).to_vec();
            if i == 5 {
                c[36..].fill(0);
            }
            if i == 9 {
                c[40] ^= 1;
            }
            journal.extend_from_slice(&c);
            commitments.push(journal::commitment(&c.clone().try_into().unwrap()).to_vec());
        }
        std::fs::write(src.join("journal"), &journal).unwrap();
        let sizes = [1000, 1, 3, CHUNK_RECORDS - 2000, 2500, 300];
        let mut at = 0;
        for (t, size) in sizes.into_iter().enumerate() {
            transaction(&mut db, &commitments[at..at + size], t as u8);
            at += size;
        }
        let pending = n - at;
        db.flush().unwrap();
        drop(db);

        let mut truth = DB::open(src.join("db"), Options::default()).unwrap();
        let mut rows = HashMap::new();
        let mut it = truth.new_iter().unwrap();
        while let Some((k, v)) = rusty_leveldb::LdbIterator::next(&mut it) {
            rows.insert(k, v);
        }
        drop(truth);

        let dst = dir.path().join("otsd");
        let report = import_otsd(&src, &dst, &mut |_| {}).unwrap();
        assert_eq!(report.commitments, n as u64);
        assert_eq!(report.pending, pending as u64);
        assert_eq!(report.complete, at as u64);
        assert_eq!((report.legacy, report.bad_macs), (1, 1));
        assert_eq!(report.bad_mac_records[0].index, 9);
        assert_eq!(report.shared_suffixes, sizes.len() as u64);
        assert_eq!(report.unreached_rows, 0);

        let reader =
            crate::log::Reader::open(&dst.join(crate::calendar::dir::LOG_DIR), None).unwrap();
        let mut suffixes = HashMap::new();
        let mut seen = 0;
        reader
            .for_each_from(0, |seq, bytes| {
                match codec::decode::<Event>(bytes).unwrap() {
                    Event::ProofSuffixImported { bytes } => {
                        suffixes.insert(seq, bytes);
                    }
                    Event::CommitmentImported {
                        round,
                        commitment,
                        proof,
                        suffix_seq,
                    } => {
                        assert_eq!(round, seen);
                        assert_eq!(commitment, commitments[seen as usize]);
                        let joined = proof.map(|head| {
                            let suffix = suffix_seq.map(|s| suffixes[&s].as_slice());
                            crate::events::joined_proof(&head, suffix)
                        });
                        assert_eq!(joined, python_answer(&rows, &commitment), "round {round}");
                        seen += 1;
                    }
                    other => panic!("{other:?}"),
                }
            })
            .unwrap();
        assert_eq!(seen, n as u64);
    }
}
