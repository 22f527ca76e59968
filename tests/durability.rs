//! Nothing acknowledged is lost: a `200` to `POST /digest` survives SIGKILL at any moment, and a
//! SIGTERM under load shuts down cleanly, answering what it accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{commitment_of, get, new_calendar, try_post_digest, Otsd};

#[test]
fn sigkill_and_sigterm_under_load_lose_no_answered_digest() {
    let dir = new_calendar();
    let cal = dir.path().join("calendar");
    let mut answered: Vec<Vec<u8>> = Vec::new();
    for kill in 0..3 {
        let otsd = Otsd::start(&cal, &[]);
        let addr = otsd.addr;
        let stop = AtomicBool::new(false);
        let got: Vec<Vec<u8>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..16u8)
                .map(|w| {
                    let stop = &stop;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        let mut i = 0u32;
                        while !stop.load(Ordering::Relaxed) {
                            let digest = [&[kill, w][..], &i.to_be_bytes()[..]].concat();
                            i += 1;
                            match try_post_digest(addr, &digest) {
                                Some(r) if r.status == 200 => {
                                    mine.push(commitment_of(&digest, &r.body))
                                }
                                _ => std::thread::sleep(Duration::from_millis(5)),
                            }
                        }
                        mine
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1500 + 300 * u64::from(kill)));
            if kill == 1 {
                let log = otsd.stop();
                assert!(
                    log.contains("log closed cleanly"),
                    "SIGTERM under load:\n{log}"
                );
            } else {
                otsd.kill();
            }
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert!(
            got.len() > 100,
            "the load was real: {} answers before kill {kill}",
            got.len()
        );
        answered.extend(got);

        let otsd = Otsd::start(&cal, &[]);
        let mut unknown = 0;
        for c in &answered {
            let r = get(otsd.addr, &format!("/timestamp/{}", hex::encode(c)), "");
            if r.text() != "Pending confirmation in Bitcoin blockchain" {
                unknown += 1;
            }
        }
        assert_eq!(
            unknown,
            0,
            "after stop {kill} (SIGTERM for 1, else SIGKILL), {unknown} of {} answered commitments were lost",
            answered.len()
        );
        otsd.stop();
    }
}
