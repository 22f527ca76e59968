//! Damage: every bit flip in a sealed segment is found at the right segment and offset; torn,
//! truncated and zero-filled tails are repaired; damage inside the active segment is refused; a
//! forger without the key can recompute the public chain but not the HMAC chain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{forge_records, record_spans};
use otsd::log::record::{self, RecordType};
use otsd::log::segment::{segment_name, HEADER_LEN, VERSION_OFFSET};
use otsd::log::{ChainState, Corruption, LogError, LogKey, Reader, Writer, WriterOptions};

fn key() -> LogKey {
    LogKey::derive(b"damage test key")
}

fn open_writer(dir: &Path, segment_size: u64) -> Writer {
    Writer::open(
        dir,
        key(),
        WriterOptions {
            segment_size,
            ..WriterOptions::default()
        },
    )
    .expect("open writer")
    .0
}

fn events(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut out = Vec::new();
    Reader::open(dir, Some(key()))?.for_each_from(0, |s, e| out.push((s, e.to_vec())))?;
    Ok(out)
}

/// A log whose first segment is small and sealed: three small batches, then a large one that rolls.
fn small_sealed_log(dir: &Path) -> PathBuf {
    let mut w = open_writer(dir, 4096);
    for i in 0..3u8 {
        w.append_batches(&[vec![vec![i; 20], vec![i + 100; 7]]])
            .expect("append");
    }
    w.append_batches(&[vec![vec![9; 4000]]])
        .expect("append large");
    dir.join(segment_name(0))
}

#[test]
fn every_bit_flip_in_a_sealed_segment_is_detected_at_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = small_sealed_log(dir.path());
    let original = fs::read(&seg).expect("read segment");
    let spans = record_spans(&original);
    assert_eq!(spans.len(), 4, "three batches and the seal");
    assert_eq!(
        spans.last().map(|(o, l)| o + l),
        Some(original.len()),
        "sealed and trimmed"
    );
    assert!(events(dir.path()).is_ok());
    let expected_offset = |byte: usize| -> u64 {
        spans
            .iter()
            .find(|(o, l)| (*o..o + l).contains(&byte))
            .map_or(0, |(o, _)| *o as u64)
    };
    let mut flipped = original.clone();
    for byte in 0..original.len() {
        for bit in 0..8 {
            flipped[byte] ^= 1 << bit;
            fs::write(&seg, &flipped).expect("write flipped");
            let result = events(dir.path());
            flipped[byte] ^= 1 << bit;
            match result {
                Err(LogError::Corrupt {
                    segment,
                    offset,
                    kind,
                }) => {
                    assert_eq!(segment, seg, "byte {byte} bit {bit}");
                    assert_eq!(
                        offset,
                        expected_offset(byte),
                        "byte {byte} bit {bit}: {kind:?}"
                    );
                }
                Err(LogError::UnsupportedVersion { segment, .. })
                    if (VERSION_OFFSET..VERSION_OFFSET + 2).contains(&byte) =>
                {
                    assert_eq!(segment, seg)
                }
                other => panic!("flip of byte {byte} bit {bit} not detected: {other:?}"),
            }
        }
    }
    fs::write(&seg, &original).expect("restore");
    assert_eq!(events(dir.path()).expect("intact again").len(), 7);
}

/// Five batches in the active segment; returns the segment path and record spans.
fn five_batches(dir: &Path) -> (PathBuf, Vec<(usize, usize)>) {
    let mut w = open_writer(dir, 1 << 20);
    for i in 0..5u8 {
        w.append_batches(&[vec![vec![i; 50]; 3]]).expect("append");
    }
    let seg = dir.join(segment_name(0));
    let spans = record_spans(&fs::read(&seg).expect("read"));
    assert_eq!(spans.len(), 5);
    (seg, spans)
}

fn reopen_and_count(dir: &Path) -> (otsd::log::Recovery, usize) {
    let (w, rec) = Writer::open(
        dir,
        key(),
        WriterOptions {
            segment_size: 1 << 20,
            ..WriterOptions::default()
        },
    )
    .expect("reopen");
    assert_eq!(w.next_seq(), rec.next_seq);
    drop(w);
    (rec, events(dir).expect("read after recovery").len())
}

#[test]
fn truncated_tail_is_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, spans) = five_batches(dir.path());
    let (off, len) = spans[4];
    let file = fs::OpenOptions::new().write(true).open(&seg).expect("open");
    file.set_len((off + len / 2) as u64).expect("truncate");
    let (rec, n) = reopen_and_count(dir.path());
    assert_eq!((rec.offset, n, rec.next_seq), (off as u64, 12, 12));
    assert!(rec.truncated_bytes > 0);
    // The repaired log takes new appends and reads them back.
    open_writer(dir.path(), 1 << 20)
        .append_batches(&[vec![b"new".to_vec()]])
        .expect("append");
    assert_eq!(
        events(dir.path()).expect("read").last(),
        Some(&(12, b"new".to_vec()))
    );
}

#[test]
fn zero_filled_tail_is_repaired() {
    for zero_from_half in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (seg, spans) = five_batches(dir.path());
        let (off, len) = spans[4];
        let mut bytes = fs::read(&seg).expect("read");
        let start = if zero_from_half { off + len / 2 } else { off };
        bytes[start..off + len].fill(0);
        fs::write(&seg, &bytes).expect("write");
        let (rec, n) = reopen_and_count(dir.path());
        assert_eq!((rec.offset, n), (off as u64, 12));
        assert_eq!(rec.truncated_bytes > 0, zero_from_half);
    }
}

#[test]
fn damage_inside_the_active_segment_is_an_error_not_a_truncation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, spans) = five_batches(dir.path());
    let mut bytes = fs::read(&seg).expect("read");
    bytes[spans[2].0 + 30] ^= 4;
    fs::write(&seg, &bytes).expect("write");
    match Writer::open(dir.path(), key(), WriterOptions::default()) {
        Err(LogError::Corrupt {
            segment,
            offset,
            kind,
        }) => {
            assert_eq!(
                (segment, offset, kind),
                (seg, spans[2].0 as u64, Corruption::BadCrc)
            );
        }
        other => panic!("expected corruption error, got {other:?}"),
    }
}

/// Recomputes the public hash chain and CRCs of `records` (in this order, renumbered from 0) as a
/// forger without the key can; tags are copied unchanged because the forger cannot compute them.
fn forge(bytes: &mut Vec<u8>, records: Vec<Vec<u8>>) {
    let mut out = forge_records(&bytes[..HEADER_LEN], 0, ChainState::GENESIS.hash, records);
    out.resize(bytes.len(), 0);
    *bytes = out;
}

fn forged_log_is_caught_by_hmac_only(edit: impl FnOnce(&mut Vec<Vec<u8>>), bad_offset: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, spans) = five_batches(dir.path());
    let mut bytes = fs::read(&seg).expect("read");
    let mut records: Vec<Vec<u8>> = spans
        .iter()
        .map(|&(o, l)| bytes[o..o + l].to_vec())
        .collect();
    edit(&mut records);
    forge(&mut bytes, records);
    fs::write(&seg, &bytes).expect("write forged");
    let public = Reader::open(dir.path(), None).expect("open").verify();
    assert!(
        public.is_ok(),
        "the forger recomputed the public chain: {public:?}"
    );
    match Reader::open(dir.path(), Some(key()))
        .expect("open")
        .verify()
    {
        Err(LogError::Corrupt {
            offset,
            kind: Corruption::BadTag,
            ..
        }) => {
            assert_eq!(offset, bad_offset as u64)
        }
        other => panic!("HMAC chain should catch the forgery: {other:?}"),
    }
}

#[test]
fn altered_event_is_caught_by_hmac_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, spans) = five_batches(dir.path());
    let at = spans[1].0;
    forged_log_is_caught_by_hmac_only(|r| r[1][record::PAYLOAD_OFFSET + 6] ^= 0xff, at);
}

#[test]
fn reordered_records_are_caught_by_hmac_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, spans) = five_batches(dir.path());
    let at = spans[1].0;
    forged_log_is_caught_by_hmac_only(|r| r.swap(1, 3), at);
}

#[test]
fn dropped_record_is_caught_by_hmac_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, spans) = five_batches(dir.path());
    let at = spans[2].0;
    forged_log_is_caught_by_hmac_only(
        |r| {
            r.remove(2);
        },
        at,
    );
}

#[test]
fn newer_version_and_unknown_record_type_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, spans) = five_batches(dir.path());
    let original = fs::read(&seg).expect("read");
    let mut bytes = original.clone();
    bytes[VERSION_OFFSET..VERSION_OFFSET + 2].copy_from_slice(&2u16.to_le_bytes());
    fs::write(&seg, &bytes).expect("write");
    assert!(matches!(
        events(dir.path()),
        Err(LogError::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        Writer::open(dir.path(), key(), WriterOptions::default()),
        Err(LogError::UnsupportedVersion { found: 2, .. })
    ));
    let mut bytes = original;
    let (off, len) = spans[3];
    bytes[off + record::TYPE_OFFSET] = 9;
    let crc = crc32fast::hash(&bytes[off..off + len - 4]);
    bytes[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
    fs::write(&seg, &bytes).expect("write");
    match events(dir.path()) {
        Err(LogError::UnknownRecordType {
            offset,
            record_type: 9,
            ..
        }) => {
            assert_eq!(offset, off as u64)
        }
        other => panic!("unknown type not refused: {other:?}"),
    }
    assert_ne!(RecordType::Batch as u8, 9);
}

#[test]
fn lost_last_segment_or_replaced_header_is_refused_by_writer_and_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = open_writer(dir.path(), 4096);
    let mut n = 0u8;
    while fs::read_dir(dir.path()).expect("ls").count() < 4 {
        w.append_batches(&[vec![vec![n; 900]]]).expect("append");
        n += 1;
    }
    drop(w);
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let active = segs.pop().expect("active");
    // Replace the active segment's carried chain values (a forger recomputes the header CRC).
    let original = fs::read(&active).expect("read");
    let mut bytes = original.clone();
    bytes[otsd::log::segment::HEADER_PREV_HASH_OFFSET] ^= 1;
    let crc = crc32fast::hash(&bytes[..otsd::log::segment::HEADER_CRC_OFFSET]);
    bytes[otsd::log::segment::HEADER_CRC_OFFSET..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    fs::write(&active, &bytes).expect("write");
    let discontinuity = |r: Result<(), LogError>| match r {
        Err(LogError::Corrupt {
            segment,
            offset: 0,
            kind: Corruption::Discontinuity,
        }) => {
            assert_eq!(segment, active)
        }
        other => panic!("expected discontinuity of {}: {other:?}", active.display()),
    };
    discontinuity(Writer::open(dir.path(), key(), WriterOptions::default()).map(|_| ()));
    discontinuity(events(dir.path()).map(|_| ()));
    // Without the damaged header's segment: the log is a consistent prefix (truncation of the tail
    // is only detectable against a known head) and the writer continues from it.
    fs::remove_file(&active).expect("remove");
    assert!(Writer::open(dir.path(), key(), WriterOptions::default()).is_ok());
}
