//! The stamper's decisions, without a node or a clock.
use super::policy::{fee_at, fits_coin, next_tx_time, DUST_SAT, STAMP_TX_VSIZE};
use super::*;
use crate::events::Event;

fn cfg() -> StamperConfig {
    StamperConfig {
        min_confirmations: 6,
        ..StamperConfig::default()
    }
}

fn obs(height: u32, last_sealed: Option<u64>) -> Observation {
    Observation {
        now: 1_000_000,
        height,
        last_sealed_round: last_sealed,
        estimate_sat_per_kvb: Some(2000),
        relay_sat_per_kvb: 1000,
        next_tx_at: 0,
    }
}

fn h(n: u8) -> [u8; 32] {
    [n; 32]
}

fn broadcast(txid: u8, plan: &TxPlan, input_sat: u64) -> Event {
    Event::TxBroadcast {
        txid: h(txid),
        raw_tx: vec![],
        tip: [0; 32],
        first_round: plan.first_round,
        last_round: plan.last_round,
        fee_sat: plan.fee_sat,
        feerate_sat_per_kvb: plan.feerate_sat_per_kvb,
        input_sat,
        height: plan.locktime,
        replaces: plan.replaces.map(|(t, _)| t),
        log_head: None,
    }
}

fn block(height: u32) -> Event {
    Event::BlockSeen {
        height,
        hash: [height as u8; 32],
    }
}

fn confirmed(txid: u8, height: u32) -> Event {
    Event::TxConfirmed {
        txid: h(txid),
        block_hash: [height as u8; 32],
        height,
        block_txids: vec![],
    }
}

fn send(d: Decision) -> TxPlan {
    match d {
        Decision::Send(p) => p,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// A state with blocks up to `height` seen.
fn state_at(height: u32) -> StamperState {
    let mut s = StamperState::new(6);
    for i in 0..=height {
        s.apply(&block(i));
    }
    s
}

#[test]
fn nothing_pending_means_no_tx() {
    let s = state_at(100);
    assert_eq!(
        decide(&s, &cfg(), &obs(100, None)),
        Decision::Wait(Wait::NothingPending)
    );
}

#[test]
fn first_tx_uses_estimate_floored_by_min_relay() {
    let s = state_at(100);
    let p = send(decide(&s, &cfg(), &obs(100, Some(4))));
    assert_eq!((p.first_round, p.last_round), (0, 4));
    assert_eq!(p.feerate_sat_per_kvb, 2000);
    assert_eq!(p.fee_sat, fee_at(2000));
    assert_eq!(p.locktime, 100);
    assert_eq!(p.replaces, None);

    let mut o = obs(100, Some(4));
    o.estimate_sat_per_kvb = None;
    o.relay_sat_per_kvb = 3000;
    assert_eq!(send(decide(&s, &cfg(), &o)).feerate_sat_per_kvb, 3000);
    o.relay_sat_per_kvb = 100; // below --btc-min-relay-feerate
    assert_eq!(send(decide(&s, &cfg(), &o)).feerate_sat_per_kvb, 1000);
}

#[test]
fn bumps_once_per_block_with_new_rounds_and_more_fee() {
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg(), &obs(100, Some(4))));
    s.apply(&broadcast(1, &p1, 50_000));
    // Same block: wait, even with new rounds.
    assert_eq!(
        decide(&s, &cfg(), &obs(100, Some(7))),
        Decision::Wait(Wait::NextBlock)
    );
    s.apply(&block(101));
    let p2 = send(decide(&s, &cfg(), &obs(101, Some(7))));
    assert_eq!((p2.first_round, p2.last_round), (0, 7));
    assert_eq!(p2.fee_sat, p1.fee_sat + fee_at(1000));
    assert_eq!(p2.replaces, Some((h(1), 50_000)));
    assert_eq!(p2.locktime, 101);
    s.apply(&broadcast(2, &p2, 50_000));
    assert_eq!(s.cycles.len(), 1);
    assert_eq!(s.cycles[0].txs.len(), 2);
    assert_eq!(s.watched_txids().count(), 2);
    // A bump happens even without new rounds (the fee still rises).
    s.apply(&block(102));
    let p3 = send(decide(&s, &cfg(), &obs(102, Some(7))));
    assert_eq!(p3.last_round, 7);
    assert!(p3.fee_sat > p2.fee_sat);
}

#[test]
fn max_fee_and_running_out_of_money_block_sending() {
    let mut s = state_at(100);
    let mut c = cfg();
    c.max_fee_sat = fee_at(2000) + fee_at(1000);
    let p1 = send(decide(&s, &c, &obs(100, Some(0))));
    assert_eq!(
        fits_coin(&p1, p1.fee_sat + DUST_SAT - 1),
        Err(Blocked::OutOfMoney {
            input_sat: p1.fee_sat + DUST_SAT - 1,
            fee_sat: p1.fee_sat
        })
    );
    assert_eq!(fits_coin(&p1, p1.fee_sat + DUST_SAT), Ok(()));
    s.apply(&broadcast(1, &p1, 1_000_000));
    s.apply(&block(101));
    let p2 = send(decide(&s, &c, &obs(101, Some(0))));
    s.apply(&broadcast(2, &p2, 1_000_000));
    s.apply(&block(102));
    assert!(matches!(
        decide(&s, &c, &obs(102, Some(0))),
        Decision::Blocked(Blocked::MaxFeeReached { .. })
    ));

    // Out of money on a bump: the input cannot pay the next fee and keep change.
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg(), &obs(100, Some(0))));
    s.apply(&broadcast(1, &p1, p1.fee_sat + DUST_SAT));
    s.apply(&block(101));
    assert!(matches!(
        decide(&s, &cfg(), &obs(101, Some(0))),
        Decision::Blocked(Blocked::OutOfMoney { .. })
    ));

    // A first tx above --btc-max-fee is refused too.
    let mut c = cfg();
    c.max_fee_sat = fee_at(2000) - 1;
    assert!(matches!(
        decide(&state_at(1), &c, &obs(1, Some(0))),
        Decision::Blocked(Blocked::MaxFeeReached { .. })
    ));
}

#[test]
fn confirmation_closes_the_cycle_and_final_after_min_confirmations() {
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg(), &obs(100, Some(4))));
    s.apply(&broadcast(1, &p1, 50_000));
    s.apply(&block(101));
    let p2 = send(decide(&s, &cfg(), &obs(101, Some(6))));
    s.apply(&broadcast(2, &p2, 50_000));
    // Broadcast but not mined: every round is still pending for /tip.
    assert_eq!(s.first_unmined_round(), 0);
    s.apply(&block(102));
    // The *first* tx got mined (the bump lost the race): rounds 5 and 6 are pending again.
    s.apply(&confirmed(1, 102));
    assert_eq!(s.first_unmined_round(), 5);
    assert_eq!(s.open_cycle(), None);
    assert_eq!(s.next_unstamped_round(), 5);
    assert_eq!(s.watched_txids().count(), 0);
    // The next cycle waits for the randomized interval.
    let mut o = obs(102, Some(6));
    o.next_tx_at = next_tx_time(o.now, &cfg(), 0.5);
    assert_eq!(o.next_tx_at, o.now + 9 * 60 * 60);
    assert_eq!(
        decide(&s, &cfg(), &o),
        Decision::Wait(Wait::Interval {
            until: o.next_tx_at
        })
    );
    o.now = o.next_tx_at;
    let p3 = send(decide(&s, &cfg(), &o));
    assert_eq!((p3.first_round, p3.last_round, p3.replaces), (5, 6, None));
    // Final at 6 confirmations: 102..=107.
    assert!(!s.is_final(102, 106));
    assert!(s.is_final(102, 107));
    for i in 103..=106 {
        s.apply(&block(i));
    }
    assert_eq!(s.cycles.len(), 1);
    s.apply(&block(107));
    assert_eq!(s.cycles.len(), 0);
    assert_eq!(s.final_through, Some(4));
    assert_eq!(s.next_unstamped_round(), 5);
    assert_eq!(s.first_unmined_round(), 5);
}

#[test]
fn reorg_puts_commitments_back_and_a_later_confirmation_counts() {
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg(), &obs(100, Some(4))));
    s.apply(&broadcast(1, &p1, 50_000));
    s.apply(&block(101));
    s.apply(&confirmed(1, 101));
    s.apply(&block(102));
    assert_eq!(s.open_cycle(), None);
    assert_eq!(s.first_unmined_round(), 5);
    s.apply(&Event::Reorg {
        fork_height: 100,
        old_tip: [102; 32],
        new_tip: [100; 32],
    });
    assert_eq!(s.tip().map(|t| t.0), Some(100));
    assert_eq!(
        s.first_unmined_round(),
        0,
        "a reorg puts the rounds back to pending"
    );
    // The cycle is open again: its tx is watched, and the next block brings a bump of it.
    let open = s.open_cycle().expect("reopened");
    assert_eq!(open.latest().txid, h(1));
    assert_eq!(s.watched_txids().copied().collect::<Vec<_>>(), vec![h(1)]);
    s.apply(&block(101));
    let p2 = send(decide(&s, &cfg(), &obs(101, Some(5))));
    assert_eq!(p2.replaces, Some((h(1), 50_000)));
    assert_eq!((p2.first_round, p2.last_round), (0, 5));
    s.apply(&broadcast(2, &p2, 50_000));
    // The original tx is mined again on the new chain before the bump reached a miner.
    s.apply(&block(102));
    s.apply(&confirmed(1, 102));
    assert_eq!(s.cycles[0].confirmed.map(|c| c.height), Some(102));
    assert_eq!(s.next_unstamped_round(), 5);
    for i in 103..=107 {
        s.apply(&block(i));
    }
    assert_eq!(s.final_through, Some(4));
}

#[test]
fn reorg_below_a_newer_cycle_leaves_it_alone() {
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg(), &obs(100, Some(1))));
    s.apply(&broadcast(1, &p1, 50_000));
    s.apply(&block(101));
    s.apply(&confirmed(1, 101));
    let p2 = send(decide(&s, &cfg(), &obs(101, Some(3))));
    assert_eq!((p2.first_round, p2.replaces), (2, None));
    s.apply(&broadcast(2, &p2, 40_000));
    s.apply(&Event::Reorg {
        fork_height: 100,
        old_tip: [101; 32],
        new_tip: [100; 32],
    });
    // Both cycles wait to be mined; only the newest may be bumped (the older one's change is
    // spent by it).
    assert_eq!(s.watched_txids().count(), 2);
    assert_eq!(s.open_cycle().map(|c| c.latest().txid), Some(h(2)));
    assert_eq!(s.next_unstamped_round(), 4);
}

#[test]
fn replay_rebuilds_the_same_state_and_memory_is_bounded() {
    let mut s = StamperState::new(6);
    let mut events = Vec::new();
    for i in 0..1000 {
        events.push(block(i as u32));
    }
    for e in &events {
        s.apply(e);
    }
    assert_eq!(
        s.blocks.len() as u32,
        crate::anchor::state::MAX_TRACKED_BLOCKS
    );
    let mut again = StamperState::new(6);
    for e in &events {
        again.apply(e);
    }
    assert_eq!(s, again);
}

#[test]
fn tx_size_bound_matches_the_fee() {
    assert_eq!(fee_at(1000), STAMP_TX_VSIZE);
    assert_eq!(fee_at(1001), STAMP_TX_VSIZE + 1);
    assert_eq!(StamperState::confirmations(100, 105), 6);
    assert_eq!(StamperState::confirmations(100, 99), 0);
}

/// The projection's fold of a real stamping transaction (built with the stamper's key), moved here
/// from `projection/stamps.rs` so that the projection never imports the stamper, even in tests.
mod projection_fold {
    use crate::anchor::proof::stamp_tip;
    use crate::events::Event;
    use crate::ots::attestation::Attestation;
    use crate::ots::timestamp::Timestamp;
    use crate::projection::{Projection, Status};
    use crate::stamper::key::{Coin, StamperKey};
    use bitcoin::hashes::Hash;

    fn seal(view: &mut Projection, seq: &mut u64, round: u64) -> Vec<u8> {
        let commitment = vec![round as u8 + 1; 44];
        let ev = Event::RoundSealed {
            round,
            time: 1,
            root: [0; 32],
            mac: [0; 8],
            commitment: commitment.clone(),
            digests: 0,
        };
        view.apply(*seq, &ev).unwrap();
        *seq += 1;
        commitment
    }

    fn block_seen(height: u32, hash: [u8; 32]) -> Event {
        Event::BlockSeen { height, hash }
    }

    #[test]
    fn rounds_go_pending_mined_complete_and_back_on_reorg() {
        let mut view = Projection::new(3);
        let mut seq = 0;
        let cs: Vec<Vec<u8>> = (0..3).map(|r| seal(&mut view, &mut seq, r)).collect();
        let mut apply = |view: &mut Projection, ev: Event| {
            view.apply(seq, &ev).unwrap();
            seq += 1;
        };
        let tip = stamp_tip(cs.iter().map(Vec::as_slice), None).unwrap();
        let key = StamperKey::from_bytes(&[3; 32]).unwrap();
        let coin = Coin {
            outpoint: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
            value_sat: 10_000,
        };
        let tx = key.stamp_tx(&coin, 200, &tip, 100).unwrap();
        let txid = tx.compute_txid().to_byte_array();
        for h in 0..=100 {
            apply(&mut view, block_seen(h, [h as u8; 32]));
        }
        apply(
            &mut view,
            Event::TxBroadcast {
                txid,
                raw_tx: bitcoin::consensus::encode::serialize(&tx),
                tip,
                first_round: 0,
                last_round: 2,
                fee_sat: 200,
                feerate_sat_per_kvb: 1300,
                input_sat: 10_000,
                height: 100,
                replaces: None,
                log_head: None,
            },
        );
        assert_eq!(view.status(&cs[1]), Status::Pending { round: 1 });
        apply(&mut view, block_seen(101, [101; 32]));
        let block_txids = [[9u8; 32], txid].concat();
        apply(
            &mut view,
            Event::TxConfirmed {
                txid,
                block_hash: [101; 32],
                height: 101,
                block_txids,
            },
        );
        assert_eq!(view.status(&cs[1]), Status::Mined { round: 1, txid });
        apply(&mut view, block_seen(102, [102; 32]));
        // A reorg before finality puts the rounds back to pending and watches the tx again.
        apply(
            &mut view,
            Event::Reorg {
                fork_height: 100,
                old_tip: [102; 32],
                new_tip: [100; 32],
            },
        );
        assert_eq!(view.status(&cs[0]), Status::Pending { round: 0 });
        assert_eq!(view.stamps().state.watched_txids().count(), 1);
        assert_eq!(view.stamps().change_coin(), None);
        // The same transaction is mined again on the new chain, and becomes final there.
        apply(&mut view, block_seen(101, [201; 32]));
        apply(&mut view, block_seen(102, [202; 32]));
        let block_txids = [[9u8; 32], [8; 32], txid].concat();
        apply(
            &mut view,
            Event::TxConfirmed {
                txid,
                block_hash: [202; 32],
                height: 102,
                block_txids,
            },
        );
        assert_eq!(view.status(&cs[2]), Status::Mined { round: 2, txid });
        apply(&mut view, block_seen(103, [203; 32]));
        apply(&mut view, block_seen(104, [204; 32]));
        for (round, c) in cs.iter().enumerate() {
            let Status::Complete { proof, .. } = view.status(c) else {
                panic!("round {round} not complete: {:?}", view.status(c));
            };
            let ts = Timestamp::from_bytes(&proof, c.clone()).unwrap();
            let atts = ts.all_attestations();
            assert_eq!(atts.len(), 1);
            assert_eq!(atts[0].1, &Attestation::Bitcoin { height: 102 });
        }
        assert_eq!(view.stamps().state.cycles.len(), 0);
        assert_eq!(view.stamps().change_coin(), Some((txid, 10_000 - 200)));
    }
}

/// The proof writer on a transaction the stamper's key really signs (here, not in `anchor`, so that
/// `anchor` never imports the stamper, not even in tests).
#[test]
fn proof_of_a_real_signed_stamping_transaction_reaches_the_block_root() {
    use crate::anchor::proof::{no_witness_bytes, stamp_tip, write_proof, TxProof};
    use crate::ots::timestamp::Timestamp;
    use bitcoin::hashes::{sha256d, Hash as _};
    use key::{Coin, StamperKey};
    use sha2::{Digest, Sha256};
    let key = StamperKey::from_bytes(&[5; 32]).unwrap();
    let c = [7u8; 44];
    let tip = stamp_tip([&c[..]], None).unwrap();
    assert_eq!(tip, <[u8; 32]>::from(Sha256::digest(c)));
    let coin = Coin {
        outpoint: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
        value_sat: 10_000,
    };
    let tx = key.stamp_tx(&coin, 500, &tip, 10).unwrap();
    let bytes = no_witness_bytes(&tx);
    let txid = tx.compute_txid().to_byte_array();
    assert_eq!(sha256d::Hash::hash(&bytes).to_byte_array(), txid);
    let proof = TxProof::new(&bytes, &tip, &[[3; 32], txid].concat(), 11).unwrap();
    let mut out = Vec::new();
    write_proof(&mut out, &[&c[..]], None, 0, &proof).unwrap();
    let ts = Timestamp::from_bytes(&out, c.to_vec()).unwrap();
    let all = ts.all_attestations();
    assert_eq!(all.len(), 1);
    let root = sha256d::Hash::hash(&[[3u8; 32], txid].concat()).to_byte_array();
    assert_eq!(all[0].0.to_vec(), root.to_vec());
}

#[test]
fn max_pending_caps_the_rounds_of_one_transaction_and_the_rest_wait_for_the_next_cycle() {
    let cfg = StamperConfig {
        max_pending: 3,
        ..cfg()
    };
    let mut s = state_at(100);
    let p1 = send(decide(&s, &cfg, &obs(100, Some(9))));
    assert_eq!((p1.first_round, p1.last_round), (0, 2));
    s.apply(&broadcast(1, &p1, 50_000));
    // A bump keeps the cap, even with more rounds sealed since.
    s.apply(&block(101));
    let p2 = send(decide(&s, &cfg, &obs(101, Some(12))));
    assert_eq!((p2.first_round, p2.last_round), (0, 2));
    // One round per transaction at the smallest cap.
    let one = StamperConfig {
        max_pending: 1,
        ..cfg
    };
    let p = send(decide(&state_at(100), &one, &obs(100, Some(9))));
    assert_eq!((p.first_round, p.last_round), (0, 0));
}
