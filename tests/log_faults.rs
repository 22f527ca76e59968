//! Fault injection through `FaultStorage`: failed fsync poisons, short writes, a write failing
//! midway, a full disk, and the difference between written and durable bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use otsd::log::{
    FaultStorage, Faults, LogError, LogKey, Reader, SeqRange, Writer, WriterHandle, WriterOptions,
};

fn key() -> LogKey {
    LogKey::derive(b"fault test key")
}

fn opts() -> WriterOptions {
    WriterOptions {
        segment_size: 8192,
        ..WriterOptions::default()
    }
}

fn open(storage: &FaultStorage) -> (Writer, otsd::log::Recovery) {
    Writer::open_with(Box::new(storage.clone()), key(), opts()).expect("open")
}

fn batch(i: u64) -> Vec<Vec<u8>> {
    vec![i.to_le_bytes().to_vec(), vec![i as u8; 40]]
}

/// Reads every event of `storage` through a real directory and the mmap reader.
fn events(storage: &FaultStorage) -> Vec<(u64, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    storage.materialize(dir.path()).expect("materialize");
    let mut out = Vec::new();
    Reader::open(dir.path(), Some(key()))
        .expect("reader")
        .for_each_from(0, |s, e| out.push((s, e.to_vec())))
        .expect("read");
    out
}

fn expected(batches: u64) -> Vec<(u64, Vec<u8>)> {
    (0..batches)
        .flat_map(|i| {
            batch(i)
                .into_iter()
                .enumerate()
                .map(move |(k, e)| (2 * i + k as u64, e))
        })
        .collect()
}

#[test]
fn failed_fsync_poisons_and_acknowledges_nothing() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    for i in 0..100 {
        w.append_batches(&[batch(i)]).expect("append");
    }
    storage.set_faults(Faults {
        fail_sync_after: Some(0),
        ..Faults::default()
    });
    assert!(matches!(
        w.append_batches(&[batch(100)]),
        Err(LogError::Io {
            op: "fdatasync",
            ..
        })
    ));
    assert!(w.is_poisoned());
    let syncs = storage.sync_count();
    assert!(matches!(
        w.append_batches(&[batch(101)]),
        Err(LogError::Poisoned)
    ));
    assert_eq!(
        storage.sync_count(),
        syncs,
        "a poisoned writer never syncs again"
    );
    assert_eq!(w.next_seq(), 200, "the failed batch was not acknowledged");

    // Power loss: only the acknowledged batches survive.
    let after_power_loss = storage.crash();
    let (w2, rec) = open(&after_power_loss);
    assert_eq!((w2.next_seq(), rec.truncated_bytes), (200, 0));
    assert_eq!(events(&after_power_loss), expected(100));

    // Killed process: the written but unsynced batch may survive, and if so intact.
    let after_kill = storage.crash_process();
    let (w3, _) = open(&after_kill);
    assert!(w3.next_seq() == 200 || w3.next_seq() == 202);
    assert_eq!(events(&after_kill), expected(w3.next_seq() / 2));
}

#[test]
fn failed_fsync_poisons_the_writer_thread() {
    let storage = FaultStorage::new();
    let (w, _) = open(&storage);
    let handle = WriterHandle::spawn(w, 16);
    let ack = handle.submit(batch(0)).expect("submit");
    assert_eq!(
        ack.blocking_recv().expect("reply").expect("ok"),
        SeqRange { first: 0, count: 2 }
    );
    storage.set_faults(Faults {
        fail_sync_after: Some(0),
        ..Faults::default()
    });
    let failed = handle.submit(batch(1)).expect("submit");
    assert!(
        failed.blocking_recv().expect("reply").is_err(),
        "no acknowledgement"
    );
    assert!(matches!(handle.submit(batch(2)), Err(LogError::Poisoned)));
    assert!(matches!(handle.close(), Err(LogError::Poisoned)));
    assert_eq!(events(&storage.crash()), expected(1));
}

#[test]
fn short_writes_are_completed() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    for i in 0..30 {
        storage.set_faults(Faults {
            short_write: Some(7 + i as usize),
            ..Faults::default()
        });
        w.append_batches(&[batch(i)])
            .expect("append despite short write");
    }
    assert!(!w.is_poisoned());
    assert_eq!(events(&storage.crash()), expected(30));
}

#[test]
fn write_failing_midway_poisons_and_recovery_truncates_it() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    for i in 0..10 {
        w.append_batches(&[batch(i)]).expect("append");
    }
    storage.set_faults(Faults {
        fail_write_after: Some(30),
        ..Faults::default()
    });
    assert!(w.append_batches(&[batch(10)]).is_err());
    assert!(matches!(
        w.append_batches(&[batch(10)]),
        Err(LogError::Poisoned)
    ));
    drop(w);
    let image = storage.crash_process();
    let (mut w2, rec) = open(&image);
    assert_eq!(rec.next_seq, 20);
    assert!((1..=30).contains(&rec.truncated_bytes), "{rec:?}");
    w2.append_batches(&[batch(10)])
        .expect("append after recovery");
    assert_eq!(events(&image), expected(11));
}

#[test]
fn full_disk_is_a_clean_error() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    w.append_batches(&[batch(0)]).expect("append");
    storage.set_faults(Faults {
        no_space: true,
        ..Faults::default()
    });
    // Larger than the preallocated segment and the first record fits: needs more space.
    let err = w
        .append_batches(&[batch(1), vec![vec![0; 20_000]]])
        .expect_err("no space");
    assert!(matches!(err, LogError::Io { .. }), "{err:?}");
    assert_eq!(w.next_seq(), 2, "nothing acknowledged");
    storage.set_faults(Faults::default());
    let _ = w.append_batches(&[batch(1)]);
    if !w.is_poisoned() {
        assert_eq!(w.next_seq(), 4);
    }
    let (w2, _) = open(&storage.crash());
    assert!(w2.next_seq() == 2 || w2.next_seq() == 4);
}

#[test]
fn unfinished_segment_creation_is_removed_and_rollover_completed() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    let mut n = 0;
    while storage.list_segments().len() < 3 {
        w.append_batches(&[batch(n)]).expect("append");
        n += 1;
    }
    drop(w);
    // A crash after sealing the active segment but before its successor was renamed into place.
    // The last batch went into the third segment, which is what gets lost.
    let last = storage.list_segments().pop().expect("segment");
    storage
        .rename_file(&last, &format!("{last}.tmp"))
        .expect("rename");
    let (w2, rec) = open(&storage);
    assert_eq!((rec.removed_tmp_files, rec.completed_rollover), (1, true));
    assert_eq!(w2.next_seq(), 2 * (n - 1));
    drop(w2);
    assert_eq!(events(&storage), expected(n - 1));
}
