//! The projection's history on disk survives SIGKILL at any point: otsd killed again and again
//! under load while it checkpoints (writes rounds, the commitment index, and the archive of a
//! final stamping transaction) starts from what the kills left and answers every `GET /timestamp`
//! exactly as a projection rebuilt from the log alone does.
//!
//! The stamped round is forged into the log (events as the stamper writes them, with blocks up to
//! finality) rather than mined by a node: what is under test is the projection's storage, and
//! a deterministic final transaction at round 0 lets every run archive it at its first checkpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{append_events, commitment_of, get, new_calendar, stamped_round_events, Otsd};
use otsd::events::Event;

const SEGMENT_ARGS: [&str; 2] = ["--segment-size-mib", "1"];

/// Posts digests from `workers` clients until `stop`; returns the commitments answered.
fn post_until(addr: SocketAddr, run: u8, workers: u8, stop: &AtomicBool) -> Vec<Vec<u8>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0u32.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut d = vec![run; 32];
                        d[1] = w;
                        d[2..6].copy_from_slice(&i.to_be_bytes());
                        match common::try_post_digest(addr, &d) {
                            Some(r) if r.status == 200 => mine.push(commitment_of(&d, &r.body)),
                            Some(r) => panic!("answer {}: {}", r.status, r.text()),
                            None => break,
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// Each commitment's answer to `GET /timestamp/`: (status, body).
type Answers = BTreeMap<Vec<u8>, (u16, Vec<u8>)>;

/// `GET /timestamp/` of each commitment: (status, body).
fn answers(addr: SocketAddr, commitments: &BTreeSet<Vec<u8>>) -> Answers {
    commitments
        .iter()
        .map(|c| {
            let r = get(addr, &format!("/timestamp/{}", hex::encode(c)), "");
            (c.clone(), (r.status, r.body))
        })
        .collect()
}

fn serve(cal: &Path, commitments: &BTreeSet<Vec<u8>>) -> (Answers, String) {
    let otsd = Otsd::start(cal, &SEGMENT_ARGS);
    let got = answers(otsd.addr, commitments);
    (got, otsd.stop())
}

#[test]
fn sigkill_while_the_history_is_written_then_start_answers_as_a_replay() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let hmac_key = std::fs::read(cal.join("hmac-key")).expect("hmac-key");
    let (mut events, _) = stamped_round_events(&hmac_key);
    let Event::RoundSealed { commitment, .. } = &events[1] else {
        panic!("the second event seals round 0");
    };
    let stamped = commitment.clone();
    // Blocks up to the sixth confirmation: round 0 is final from the first start on.
    events.extend((100..=106).map(|height| Event::BlockSeen {
        height,
        hash: [height as u8; 32],
    }));
    append_events(&cal, &events);

    let txs = cal.join("projection").join("txs");
    let archived = || std::fs::metadata(&txs).is_ok_and(|m| m.len() == 80);
    let mut answered: BTreeSet<Vec<u8>> = BTreeSet::from([stamped.clone()]);
    for run in 1..=5u8 {
        let otsd = Otsd::start(&cal, &SEGMENT_ARGS);
        let stop = AtomicBool::new(false);
        let addr = otsd.addr;
        let got = std::thread::scope(|s| {
            let load = s.spawn(|| post_until(addr, run, 4, &stop));
            if run == 1 {
                // The first run lasts until a sealed segment was checkpointed with the final
                // transaction archived; the others are killed at a different point each.
                common::wait_for("the final transaction archived", 120, || {
                    archived().then_some(())
                });
            }
            std::thread::sleep(Duration::from_millis(300 + 370 * u64::from(run)));
            otsd.kill();
            stop.store(true, Ordering::Relaxed);
            load.join().expect("load")
        });
        answered.extend(got);
    }
    assert!(answered.len() > 2000, "{} answered", answered.len());
    assert!(archived(), "the final transaction stays archived");

    // Start from whatever the kills left (the checkpoint and the history files, maybe with an
    // interrupted flush after them).
    let started = Instant::now();
    let (after_kills, log) = serve(&cal, &answered);
    let line = log
        .lines()
        .find(|l| l.contains("rebuilt the projection"))
        .unwrap_or_else(|| panic!("no rebuild line:\n{log}"));
    assert!(line.contains("checkpoint=Some("), "{line}");
    assert!(!log.contains("ignoring the projection checkpoint"), "{log}");
    assert!(!log.contains("damaged"), "{log}");
    let (status, _) = &after_kills[&stamped];
    assert_eq!(
        *status, 200,
        "the final round's proof is served from the archive"
    );
    let not_pending: Vec<_> = after_kills
        .iter()
        .filter(|(c, (status, body))| {
            **c != stamped
                && (*status, body.as_slice())
                    != (
                        404,
                        b"Pending confirmation in Bitcoin blockchain".as_slice(),
                    )
        })
        .collect();
    assert!(
        not_pending.is_empty(),
        "{} answered commitments are not pending, first: {:?}",
        not_pending.len(),
        not_pending.first()
    );

    // The same log folded from nothing gives byte-identical answers.
    std::fs::remove_dir_all(cal.join("projection")).expect("remove the projection");
    let (replayed, log) = serve(&cal, &answered);
    assert!(log.contains("checkpoint=None"), "{log}");
    assert_eq!(after_kills, replayed);
    eprintln!(
        "{} commitments compared in {:.1} s",
        answered.len(),
        started.elapsed().as_secs_f64()
    );
}
