//! Round trips through writer and reader: random events and segment sizes, reopening in between,
//! reading from any sequence number, following the tail, and the writer thread.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::path::Path;

use otsd::log::{LogKey, Reader, SeqRange, Writer, WriterHandle, WriterOptions};
use proptest::prelude::*;

fn key() -> LogKey {
    LogKey::derive(b"round trip key")
}

fn read_all(dir: &Path, from: u64) -> (Vec<(u64, Vec<u8>)>, u64) {
    let reader = Reader::open(dir, Some(key())).expect("open reader");
    let mut out = Vec::new();
    let next = reader
        .for_each_from(from, |seq, ev| out.push((seq, ev.to_vec())))
        .expect("read log");
    (out, next)
}

fn opts(segment_size: u64) -> WriterOptions {
    WriterOptions {
        segment_size,
        ..WriterOptions::default()
    }
}

/// Appends `groups` (each a list of batches), reopening the writer before each chunk of groups.
fn write_groups(dir: &Path, segment_size: u64, chunks: &[Vec<Vec<Vec<u8>>>]) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for chunk in chunks {
        let (mut w, rec) = Writer::open(dir, key(), opts(segment_size)).expect("open writer");
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(w.next_seq(), all.len() as u64);
        for batch in chunk {
            let ranges = w
                .append_batches(std::slice::from_ref(batch))
                .expect("append");
            let first = all.len() as u64;
            assert_eq!(
                ranges,
                vec![SeqRange {
                    first,
                    count: batch.len() as u32
                }]
            );
            all.extend(batch.iter().cloned());
        }
    }
    all
}

fn event() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

fn batch() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(event(), 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_events_round_trip(
        chunks in prop::collection::vec(prop::collection::vec(batch(), 0..8), 1..5),
        segment_size in 4096u64..20_000,
        from_frac in 0.0f64..1.2,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = write_groups(dir.path(), segment_size, &chunks);
        let (read, next) = read_all(dir.path(), 0);
        prop_assert_eq!(next, all.len() as u64);
        prop_assert_eq!(read.len(), all.len());
        for (i, (seq, ev)) in read.iter().enumerate() {
            prop_assert_eq!(*seq, i as u64);
            prop_assert_eq!(ev, &all[i]);
        }
        let from = (all.len() as f64 * from_frac) as u64;
        let (tail, next) = read_all(dir.path(), from);
        prop_assert_eq!(next, all.len() as u64);
        let expected: Vec<(u64, Vec<u8>)> =
            read.into_iter().filter(|(s, _)| *s >= from).collect();
        prop_assert_eq!(tail, expected);
        let head = Reader::open(dir.path(), Some(key())).expect("reader").verify().expect("verify");
        prop_assert_eq!(head.next_seq, all.len() as u64);
    }
}

#[test]
fn group_of_batches_is_one_call_and_gets_consecutive_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = Writer::open(dir.path(), key(), WriterOptions::default()).expect("open");
    let batches = vec![
        vec![b"a".to_vec()],
        vec![b"b".to_vec(), b"c".to_vec()],
        vec![vec![]],
    ];
    let ranges = w.append_batches(&batches).expect("append");
    assert_eq!(
        ranges,
        vec![
            SeqRange { first: 0, count: 1 },
            SeqRange { first: 1, count: 2 },
            SeqRange { first: 3, count: 1 }
        ]
    );
    assert_eq!(w.next_seq(), 4);
    assert!(w.append_batches(&[vec![]]).is_err(), "empty batch refused");
    let (read, _) = read_all(dir.path(), 0);
    let events: Vec<Vec<u8>> = read.into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), vec![]]
    );
}

#[test]
fn second_writer_on_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _w = Writer::open(dir.path(), key(), WriterOptions::default()).expect("open");
    assert!(Writer::open(dir.path(), key(), WriterOptions::default()).is_err());
}

#[test]
fn reader_with_wrong_key_fails_but_public_chain_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = Writer::open(dir.path(), key(), opts(4096)).expect("open");
    for i in 0..50u8 {
        w.append_batches(&[vec![vec![i; 100]]]).expect("append");
    }
    let wrong = Reader::open(dir.path(), Some(LogKey::derive(b"other"))).expect("open");
    assert!(matches!(
        wrong.verify(),
        Err(otsd::log::LogError::Corrupt {
            kind: otsd::log::Corruption::BadTag,
            ..
        })
    ));
    let public = Reader::open(dir.path(), None).expect("open");
    assert_eq!(public.verify().expect("public chain").next_seq, 50);
}

#[test]
fn tail_follows_growth_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, _) = Writer::open(dir.path(), key(), opts(4096)).expect("open");
    let reader = Reader::open(dir.path(), Some(key())).expect("reader");
    let mut tail = reader.tail(0);
    let mut seen = Vec::new();
    assert_eq!(
        tail.poll(|s, e| seen.push((s, e.to_vec()))).expect("poll"),
        0
    );
    let mut expected = Vec::new();
    for round in 0..40u64 {
        let batch: Vec<Vec<u8>> = (0..(round % 5 + 1))
            .map(|k| vec![(round + k) as u8; 150])
            .collect();
        let r = w
            .append_batches(std::slice::from_ref(&batch))
            .expect("append");
        for (k, e) in batch.into_iter().enumerate() {
            expected.push((r[0].first + k as u64, e));
        }
        if round % 3 == 0 {
            tail.poll(|s, e| seen.push((s, e.to_vec()))).expect("poll");
            assert_eq!(seen, expected, "after round {round}");
        }
    }
    tail.poll(|s, e| seen.push((s, e.to_vec()))).expect("poll");
    assert_eq!(seen, expected);
    assert_eq!(tail.next_seq(), w.next_seq());
    assert!(
        std::fs::read_dir(dir.path()).expect("ls").count() > 3,
        "several segments"
    );
}

#[test]
fn writer_handle_groups_and_acknowledges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, _) = Writer::open(dir.path(), key(), opts(64 << 10)).expect("open");
    let handle = WriterHandle::spawn(w, 1024);
    let acks: Vec<_> = (0..500u32)
        .map(|i| {
            handle
                .submit(vec![i.to_le_bytes().to_vec(); 3])
                .expect("submit")
        })
        .collect();
    let mut ranges = Vec::new();
    for ack in acks {
        ranges.push(ack.blocking_recv().expect("reply").expect("durable"));
    }
    for (i, r) in ranges.iter().enumerate() {
        assert_eq!(
            *r,
            SeqRange {
                first: 3 * i as u64,
                count: 3
            }
        );
    }
    assert!(matches!(
        handle.submit(vec![]),
        Err(otsd::log::LogError::EmptyBatch)
    ));
    handle.close().expect("close");
    let (read, next) = read_all(dir.path(), 0);
    assert_eq!(next, 1500);
    assert_eq!(read[1499].1, 499u32.to_le_bytes().to_vec());
}

/// Walking records gives every batch and seal with the chain value after it; the writer handle's
/// head after each group commit is one of those points, and the last is the reader's head.
#[test]
fn records_carry_the_chain_points_the_writer_handle_reports() {
    use otsd::log::record::RecordType;
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = Writer::open(dir.path(), key(), opts(4096)).expect("open writer");
    let handle = WriterHandle::spawn(w, 16);
    let mut heads = vec![(handle.head().next_seq, handle.head().chain.hash)];
    for i in 0..40u8 {
        let ack = handle.submit(vec![vec![i; 200], vec![i; 50]]).unwrap();
        let range = ack.blocking_recv().unwrap().unwrap();
        let head = handle.head();
        assert_eq!(head.next_seq, range.first + 2);
        heads.push((head.next_seq, head.chain.hash));
    }
    handle.close().unwrap();
    let reader = Reader::open(dir.path(), Some(key())).unwrap();
    let mut points = vec![(0, [0u8; 32])];
    let mut seals = 0;
    reader
        .for_each_record_from(0, |rec| {
            seals += usize::from(rec.record_type == RecordType::Seal);
            points.push((rec.first_seq + u64::from(rec.count), rec.hash));
        })
        .unwrap();
    assert!(seals >= 2, "segments of 4 KiB roll over: {seals} seals");
    for head in &heads {
        assert!(points.contains(head), "{head:?} is no chain point");
    }
    let last = reader.head().unwrap();
    assert_eq!(points.last(), Some(&(last.next_seq, last.chain.hash)));
}
