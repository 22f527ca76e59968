//! `otsctl import-otsd`: a new otsd calendar directory from a Python otsd calendar directory.
//!
//! The Python directory is only read (its LevelDB through a copy). The new calendar is built in
//! `<DIR>.import-tmp` beside `DIR` and renamed to `DIR` only when complete, so an interrupted
//! import leaves no calendar that otsd would start on; running it again removes that leftover
//! (recognized by its [`IN_PROGRESS`] marker) and starts over.
//!
//! What it writes: `uri`, `donation_addr` and `hmac-key` copied byte for byte (the key exactly as
//! the Python server reads it), and a log holding one `CommitmentImported` event per journal
//! record, in journal order, so round `i` is journal index `i`. Two threads: one walks the journal
//! and the database and builds the events, the other encodes them and appends them to the log in
//! batches of [`BATCH_EVENTS`] (one record each), [`GROUP_BATCHES`] batches per `fdatasync`.
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::db::{self, Answer, DbError, ProofDb, TableProgress};
use super::journal::{self, Journal, JournalError};
use crate::calendar::commitment::COMMITMENT_LEN;
use crate::calendar::dir::{CalendarDir, DirError};
use crate::calendar::legacy::LEGACY_LEN;
use crate::calendar::mac::CommitmentMac;
use crate::events::codec;
use crate::events::Event;
use crate::log::{LogError, LogKey, Writer, WriterOptions};

/// Events per log record.
pub const BATCH_EVENTS: usize = 1024;
/// Records per group commit.
pub const GROUP_BATCHES: usize = 16;
/// Problems listed by journal index in the report; the rest are counted.
pub const MAX_LISTED: usize = 100;
/// A proof's end shorter than this is kept in its own event, not shared.
pub const MIN_SHARED_SUFFIX: usize = 64;
/// Shared proof ends remembered (commitments come in journal order, so one stamping
/// transaction's commitments are neighbours).
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
    #[error("the reading thread stopped: {0}")]
    Walker(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A journal record the report names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listed {
    pub index: u64,
    pub commitment: String,
    pub detail: String,
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
    (report.db_bytes_copied, report.db_bytes_linked) =
        db::copy_db(&src.join("db"), &tmp.join(DB_COPY))?;
    report.copy_seconds = copy_started.elapsed().as_secs_f64();
    let journal = Journal::open(&src.join("journal"))?;
    report.torn_tail_bytes = journal.torn_tail_bytes;
    report.torn_tail_records = u64::from(journal.torn_tail_bytes > 0);
    let key = LogKey::derive(&source.hmac_key);
    let (mut writer, _) = Writer::open(
        &tmp.join(crate::calendar::dir::LOG_DIR),
        key,
        WriterOptions::default(),
    )?;
    let first_seq = writer.next_seq();
    let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(2 * GROUP_BATCHES);
    let tables = std::sync::Arc::new(TableProgress::default());
    let walker = {
        let (db_path, hmac_key, known_good) = (
            tmp.join(DB_COPY),
            source.hmac_key.clone(),
            report.known_good,
        );
        let tables = tables.clone();
        std::thread::Builder::new()
            .name("import-walk".into())
            .spawn(move || {
                let from = (known_good, first_seq);
                walk(journal, &db_path, &hmac_key, from, &tables, &tx)
            })
            .map_err(io(&tmp))?
    };
    let total = report_total(src)?;
    report.events_written = append_all(&mut writer, &rx, (total, &tables), progress)?;
    let next_seq = writer.next_seq();
    drop(writer);
    let walked = walker
        .join()
        .map_err(|_| ImportError::Walker("it panicked".into()))??;
    if next_seq != walked.next_seq {
        // The suffix references were numbered by the walker; they must be the log's numbers.
        return Err(ImportError::Walker(format!(
            "the log is at seq {next_seq}, the walker numbered events up to {}",
            walked.next_seq
        )));
    }
    merge_walk(&mut report, walked);
    std::fs::remove_dir_all(tmp.join(DB_COPY)).map_err(io(&tmp))?;
    std::fs::remove_dir_all(tmp.join(DB_COPY).with_extension("rows")).map_err(io(&tmp))?;
    std::fs::remove_file(tmp.join(IN_PROGRESS)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, dst).map_err(io(dst))?;
    sync_parent(dst)?;
    CalendarDir::load(dst)?;
    report.seconds = started.elapsed().as_secs_f64();
    report.commitments_per_second = report.commitments as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// Whole records in the journal, for the progress bar.
fn report_total(src: &Path) -> Result<u64, ImportError> {
    let path = src.join("journal");
    let len = std::fs::metadata(&path).map_err(io(&path))?.len();
    Ok(len / COMMITMENT_LEN as u64)
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

/// Encodes and appends every batch the walker sends; returns the events written.
fn append_all(
    writer: &mut Writer,
    rx: &mpsc::Receiver<Vec<Event>>,
    (total, tables): (u64, &TableProgress),
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<u64, ImportError> {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut written, mut imported) = (0u64, 0u64);
    let mut group: Vec<Vec<Vec<u8>>> = Vec::with_capacity(GROUP_BATCHES);
    let mut last_tick = Instant::now();
    let flush = |writer: &mut Writer, group: &mut Vec<Vec<Vec<u8>>>| -> Result<(), ImportError> {
        if !group.is_empty() {
            writer.append_batches(group)?;
            group.clear();
        }
        Ok(())
    };
    loop {
        let events = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(events) => events,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if written == 0 {
                    progress(ImportProgress {
                        phase: "reading the database",
                        unit: "tables",
                        done: tables.read.load(Relaxed),
                        total: tables.total.load(Relaxed),
                    });
                }
                continue;
            }
        };
        imported += events
            .iter()
            .filter(|e| matches!(e, Event::CommitmentImported { .. }))
            .count() as u64;
        let batch = events
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()?;
        written += batch.len() as u64;
        group.push(batch);
        if group.len() >= GROUP_BATCHES {
            flush(writer, &mut group)?;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            progress(ImportProgress {
                phase: "importing",
                unit: "journal records",
                done: imported,
                total,
            });
        }
    }
    flush(writer, &mut group)?;
    progress(ImportProgress {
        phase: "importing",
        unit: "journal records",
        done: imported,
        total,
    });
    Ok(written)
}

/// What the walking thread found.
#[derive(Debug, Default)]
struct Walked {
    report: ImportReport,
    /// Sequence number after the last event sent.
    next_seq: u64,
}

fn merge_walk(report: &mut ImportReport, walked: Walked) {
    let w = walked.report;
    report.commitments = w.commitments;
    report.complete = w.complete;
    report.pending = w.pending;
    report.legacy = w.legacy;
    report.bad_macs = w.bad_macs;
    report.bad_mac_records = w.bad_mac_records;
    report.unusable_trees = w.unusable_trees;
    report.unusable_tree_records = w.unusable_tree_records;
    report.pending_before_known_good = w.pending_before_known_good;
    report.complete_after_first_pending = w.complete_after_first_pending;
    report.rows_read = w.rows_read;
    report.db_rows = w.db_rows;
    report.unreached_rows = w.unreached_rows;
    report.row_table_seconds = w.row_table_seconds;
    report.shared_suffixes = w.shared_suffixes;
}

/// Reads the journal in order, answers each record from the database, and sends the events in
/// batches; then counts the rows no record reached.
fn walk(
    mut journal: Journal,
    db_path: &Path,
    hmac_key: &[u8],
    (known_good, first_seq): (u64, u64),
    tables: &TableProgress,
    tx: &mpsc::SyncSender<Vec<Event>>,
) -> Result<Walked, ImportError> {
    let scratch = db_path.with_extension("rows");
    std::fs::create_dir_all(&scratch).map_err(io(&scratch))?;
    let started = Instant::now();
    let mut db = ProofDb::build(db_path, &scratch, tables, db::memory_budget())?;
    let mut r = ImportReport {
        row_table_seconds: started.elapsed().as_secs_f64(),
        ..ImportReport::default()
    };
    let mut mac = CommitmentMac::new(hmac_key);
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    let mut seen_pending = false;
    let mut seq = first_seq;
    let mut recent: Vec<(Rc<[u8]>, usize, u64)> = Vec::with_capacity(RECENT_SUFFIXES);
    while let Some(record) = journal.next_record()? {
        r.commitments += 1;
        check_mac(&mut mac, &record, &mut r);
        let proof = match db.answer(&record.commitment)? {
            Answer::Complete(bytes) => {
                r.complete += 1;
                r.complete_after_first_pending += u64::from(seen_pending);
                Some(bytes)
            }
            Answer::Missing { .. } => None,
            Answer::Bad { key, why } => {
                r.unusable_trees += 1;
                let detail = format!("row {}: {why}", hex::encode(key));
                list(&mut r.unusable_tree_records, &record, detail);
                None
            }
        };
        if proof.is_none() {
            r.pending += 1;
            seen_pending = true;
            r.pending_before_known_good += u64::from(record.index < known_good);
        }
        let (proof, suffix_seq) = match proof {
            Some(bytes) => {
                let (head, suffix) = share_suffix(&bytes, &mut recent, seq, &mut batch);
                seq += u64::from(suffix.is_some_and(|(_, new)| new));
                (Some(head), suffix.map(|(s, _)| s))
            }
            None => (None, None),
        };
        batch.push(Event::CommitmentImported {
            round: record.index,
            commitment: record.commitment,
            proof,
            suffix_seq,
        });
        seq += 1;
        if batch.len() >= BATCH_EVENTS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_EVENTS));
            tx.send(full)
                .map_err(|_| ImportError::Walker("the log writer stopped".into()))?;
        }
    }
    if !batch.is_empty() {
        tx.send(batch)
            .map_err(|_| ImportError::Walker("the log writer stopped".into()))?;
    }
    r.rows_read = db.rows_read;
    r.db_rows = db.rows();
    r.unreached_rows = db.unreached();
    r.shared_suffixes = seq - first_seq - r.commitments;
    Ok(Walked {
        report: r,
        next_seq: seq,
    })
}

/// Splits a complete proof into the head kept in its `CommitmentImported` and a shared suffix:
/// returns the head, and the suffix's sequence number with whether a new `ProofSuffixImported`
/// (numbered `seq`) was pushed onto `batch` for it. A suffix equal to one of the `recent` ones is
/// reused.
fn share_suffix(
    proof: &Rc<[u8]>,
    recent: &mut Vec<(Rc<[u8]>, usize, u64)>,
    seq: u64,
    batch: &mut Vec<Event>,
) -> (Vec<u8>, Option<(u64, bool)>) {
    let at = tree_end(proof);
    let suffix = &proof[at..];
    if at == 0 || suffix.len() < MIN_SHARED_SUFFIX {
        return (proof.to_vec(), None);
    }
    let head = proof[..at].to_vec();
    if let Some((_, _, s)) = recent.iter().find(|(p, a, _)| &p[*a..] == suffix) {
        return (head, Some((*s, false)));
    }
    if recent.len() >= RECENT_SUFFIXES {
        recent.remove(0);
    }
    recent.push((proof.clone(), at, seq));
    batch.push(Event::ProofSuffixImported {
        bytes: suffix.to_vec(),
    });
    (head, Some((seq, true)))
}

/// Where the Merkle-tree part of a Python proof ends: the offset of its first item that is not a
/// `sha256` or an `append`/`prepend` of 32 bytes (the transaction's tip meets the bytes before it
/// in the transaction there). Everything from there on is the same for every commitment of the
/// transaction.
fn tree_end(proof: &[u8]) -> usize {
    use crate::ots::op::{TAG_APPEND, TAG_PREPEND, TAG_SHA256};
    let mut i = 0;
    while i < proof.len() {
        match proof[i] {
            TAG_SHA256 => i += 1,
            TAG_APPEND | TAG_PREPEND if proof.get(i + 1) == Some(&32) && i + 34 <= proof.len() => {
                i += 34
            }
            _ => return i,
        }
    }
    i
}

fn check_mac(mac: &mut CommitmentMac, record: &journal::Record, r: &mut ImportReport) {
    if record.commitment.len() == LEGACY_LEN {
        r.legacy += 1;
        return;
    }
    let Ok(c) = <&[u8; COMMITMENT_LEN]>::try_from(record.commitment.as_slice()) else {
        return;
    };
    if !mac.verify(c) {
        r.bad_macs += 1;
        list(
            &mut r.bad_mac_records,
            record,
            "MAC does not verify under hmac-key".into(),
        );
    }
}

fn list(into: &mut Vec<Listed>, record: &journal::Record, detail: String) {
    if into.len() < MAX_LISTED {
        into.push(Listed {
            index: record.index,
            commitment: hex::encode(&record.commitment),
            detail,
        });
    }
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

    /// `sha256`, then `append`/`prepend` of 32 bytes: the Merkle-tree part; then the transaction.
    fn proof(sibling: u8, tx_prefix: u8) -> Rc<[u8]> {
        let mut p = vec![0x08, 0xf0, 32];
        p.extend_from_slice(&[sibling; 32]);
        p.extend_from_slice(&[0x08, 0xf1, 32]);
        p.extend_from_slice(&[7; 32]);
        p.push(0x08);
        let head = p.len();
        p.extend_from_slice(&[0xf1, 60]);
        p.extend_from_slice(&[tx_prefix; 60]);
        p.extend_from_slice(&[
            0x08, 0x08, 0x00, 0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01,
        ]);
        p.extend_from_slice(&[0x03, 0x02, 0x81, 0x01]);
        assert_eq!(tree_end(&p), head);
        Rc::from(p)
    }

    /// Commitments of one transaction share one suffix event; a new transaction writes another;
    /// head ++ suffix is always the whole proof.
    #[test]
    fn proofs_of_one_transaction_share_their_end() {
        let mut recent = Vec::new();
        let mut batch = Vec::new();
        let (a, b, c) = (proof(1, 0xaa), proof(2, 0xaa), proof(1, 0xbb));
        let (ha, sa) = share_suffix(&a, &mut recent, 10, &mut batch);
        assert_eq!(sa, Some((10, true)));
        let (hb, sb) = share_suffix(&b, &mut recent, 12, &mut batch);
        assert_eq!(sb, Some((10, false)));
        let (hc, sc) = share_suffix(&c, &mut recent, 13, &mut batch);
        assert_eq!(sc, Some((13, true)));
        assert_eq!(batch.len(), 2);
        let suffix = |i: usize| match &batch[i] {
            Event::ProofSuffixImported { bytes } => bytes.clone(),
            other => panic!("{other:?}"),
        };
        for (head, s, whole) in [(ha, 0, &a), (hb, 0, &b), (hc, 1, &c)] {
            assert_eq!(
                crate::events::joined_proof(&head, Some(&suffix(s))),
                whole[..]
            );
        }
    }

    /// A proof with no Merkle-tree part, or a short end, stays whole in its event.
    #[test]
    fn short_or_unsplittable_proofs_stay_whole() {
        let (mut recent, mut batch) = (Vec::new(), Vec::new());
        let att: Rc<[u8]> = Rc::from(vec![0x00; 80]);
        assert_eq!(
            share_suffix(&att, &mut recent, 0, &mut batch),
            (att.to_vec(), None)
        );
        let short: Rc<[u8]> = Rc::from(vec![0x08, 0x00, 1, 2, 3]);
        assert_eq!(
            share_suffix(&short, &mut recent, 0, &mut batch),
            (short.to_vec(), None)
        );
        assert!(batch.is_empty());
    }
}
