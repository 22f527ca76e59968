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
    // A failed preallocation wrote nothing: the writer is not poisoned and appends again once
    // space is back (issue 13 hole 8: this test used to accept either outcome).
    assert!(!w.is_poisoned(), "a failed preallocation must not poison");
    storage.set_faults(Faults::default());
    w.append_batches(&[batch(1)])
        .expect("append once space is back");
    assert_eq!(w.next_seq(), 4);
    let (w2, _) = open(&storage.crash());
    assert_eq!(w2.next_seq(), 4, "the acknowledged batch is durable");
    assert_eq!(events(&storage.crash()), expected(2));
}

/// Issue 13 hole 4: on a full disk, sealing the active segment succeeds but its successor cannot
/// be created. Nothing of the log was written by the failed creation, so the writer must not be
/// poisoned: it creates the successor on the next append once space is back. (Before, the failed
/// roll-over poisoned the writer until a restart.)
#[test]
fn a_failed_creation_of_the_next_segment_does_not_poison() {
    let storage = FaultStorage::new();
    let (mut w, _) = open(&storage);
    let mut n = 0;
    while storage.list_segments().len() < 2 {
        w.append_batches(&[batch(n)]).expect("append");
        n += 1;
    }
    // Fill the second segment up to the roll-over, then run out of space.
    let segments = storage.list_segments().len();
    storage.set_faults(Faults {
        no_space: true,
        ..Faults::default()
    });
    let mut refused = None;
    for _ in 0..1000 {
        match w.append_batches(&[batch(n)]) {
            Ok(_) => n += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the roll-over needs space");
    assert!(
        matches!(
            err,
            LogError::Io {
                op: "preallocate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!w.is_poisoned(), "nothing was written: not poisoned");
    assert_eq!(
        w.next_seq(),
        2 * n,
        "the refused batch got no sequence numbers"
    );
    assert_eq!(storage.list_segments().len(), segments, "no new segment");
    assert!(
        !storage.list_segments().iter().any(|s| s.ends_with(".tmp")),
        "the .tmp is removed"
    );
    // A power cut now: the sealed segment is complete, recovery starts its successor.
    let image = storage.crash();
    let (w_image, rec) = open(&image);
    assert_eq!((w_image.next_seq(), rec.completed_rollover), (2 * n, true));
    drop(w_image);
    // Space is back: the same writer goes on.
    storage.set_faults(Faults::default());
    w.append_batches(&[batch(n)])
        .expect("append once space is back");
    assert_eq!(storage.list_segments().len(), segments + 1);
    assert_eq!(events(&storage.crash()), expected(n + 1));
}

/// The writer thread after such a failure: every append is refused as `Stalled` (including ones
/// queued before it learned) until its owner resumes it; then it goes on. Not poisoned.
#[test]
fn a_writer_thread_stalls_after_a_failure_that_wrote_nothing_and_resumes() {
    let storage = FaultStorage::new();
    let (w, _) = open(&storage);
    let handle = WriterHandle::spawn(w, 16);
    storage.set_faults(Faults {
        no_space: true,
        ..Faults::default()
    });
    let big = vec![vec![0u8; 20_000]];
    let failed = handle.submit(big).expect("submit");
    let err = failed
        .blocking_recv()
        .expect("reply")
        .expect_err("no space");
    assert!(matches!(err, LogError::Io { .. }), "{err:?}");
    assert!(handle.is_stalled() && !handle.is_poisoned());
    assert!(matches!(handle.submit(batch(0)), Err(LogError::Stalled)));
    storage.set_faults(Faults::default());
    handle.resume();
    let ack = handle.submit(batch(0)).expect("submit after resume");
    assert_eq!(
        ack.blocking_recv().expect("reply").expect("durable"),
        SeqRange { first: 0, count: 2 }
    );
    handle.close().expect("close");
    assert_eq!(events(&storage.crash()), expected(1));
}

/// Issue 13 hole 6: a full queue at the log writer is "try later" (503 with Retry-After), not a
/// poisoned intake. Before, the aggregator stopped intake until a restart.
#[test]
fn a_full_writer_queue_is_try_later_and_intake_goes_on() {
    use otsd::aggregator::{self, AggregatorOptions, Intake, RoundSealer, SubmitError};
    use std::sync::{Arc, RwLock};
    use std::time::Duration;
    let storage = FaultStorage::new();
    storage.set_faults(Faults {
        slow_sync: Some(Duration::from_millis(400)),
        ..Faults::default()
    });
    let (w, _) = open(&storage);
    let handle = WriterHandle::spawn(w, 1);
    // Another appender (the stamper) fills the writer's one-slot queue behind a slow fsync.
    let other = handle.submitter();
    let first = other
        .submit(vec![b"stamper event".to_vec()])
        .expect("first");
    std::thread::sleep(Duration::from_millis(100));
    let second = other
        .submit(vec![b"stamper event".to_vec()])
        .expect("queued");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let (intake, queue, state) = Intake::new(16);
        let view = Arc::new(RwLock::new(otsd::projection::Projection::new(6)));
        let sealer = RoundSealer::new("http://127.0.0.1:1", &[7; 32]).expect("sealer");
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let opts = AggregatorOptions {
            min_round_interval: Duration::ZERO,
            metrics: Default::default(),
        };
        let agg = tokio::spawn(aggregator::run(
            queue, stop_rx, handle, sealer, view, state, opts,
        ));
        let refused = intake.submit(vec![1; 32]).expect("queued").await;
        assert!(
            matches!(refused, Ok(Err(SubmitError::LogBusy(_)))),
            "{refused:?}"
        );
        assert_eq!(intake.refusal(), None, "intake is not poisoned");
        first.await.expect("reply").expect("durable");
        second.await.expect("reply").expect("durable");
        let answer = intake.submit(vec![2; 32]).expect("queued").await;
        assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
        let _ = stop.send(());
        drop(other);
        let handle = agg.await.expect("aggregator");
        handle.close().expect("close");
    });
    // The refused digest got no round; the answered one is round 0, after the two events.
    let seqs: Vec<u64> = events(&storage.crash()).iter().map(|e| e.0).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
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
