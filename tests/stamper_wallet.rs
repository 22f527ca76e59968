//! The Bitcoin Core wallet signer (`otsd --btc-wallet`) against a FAKE node.
//!
//! No wallet-enabled Bitcoin Core can be built or run in this environment (the node built from
//! `libbitcoinkernel-sys` has no wallet), so these tests do not talk to a real wallet. Instead
//! [`RecordedWallet`] replays answers written in the shapes Bitcoin Core documents for
//! `listunspent`, `getrawchangeaddress` and `signrawtransactionwithwallet` (`bitcoin-cli help
//! <rpc>`); they are not captured from a live node. Its "signing" echoes the unsigned transaction
//! with a placeholder witness, so these tests check what otsd asks for and builds, not that a real
//! wallet would sign it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
use std::cell::RefCell;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Amount, Network, OutPoint, ScriptBuf, Transaction, Txid, WPubkeyHash};
use serde_json::{json, Value};

use otsd::stamper::key::committed_tip;
use otsd::stamper::wallet::{wallet_coin, wallet_stamp_tx, WalletRpc};
use otsd::stamper::{decide, Decision, Observation, StamperConfig, StamperState};

/// What the fake wallet does when asked to sign.
#[derive(Clone, Copy)]
enum Signing {
    /// `{"hex": <tx with a witness>, "complete": true}`
    Complete,
    /// `{"hex": ..., "complete": false, "errors": [...]}`
    Incomplete,
    /// Signs, but with the change output's value altered.
    Tampered,
}

struct RecordedWallet {
    listunspent: Value,
    change_address: String,
    signing: Signing,
    calls: RefCell<Vec<(String, Vec<Value>)>>,
}

impl RecordedWallet {
    fn new(signing: Signing) -> Self {
        RecordedWallet {
            listunspent: listunspent(),
            change_address: change_address().to_string(),
            signing,
            calls: RefCell::new(Vec::new()),
        }
    }

    fn sign(&self, hex_tx: &str) -> Value {
        let mut tx: Transaction =
            bitcoin::consensus::encode::deserialize(&hex::decode(hex_tx).unwrap()).unwrap();
        tx.input[0].witness.push([0x30; 71]);
        tx.input[0].witness.push([0x02; 33]);
        if let Signing::Tampered = self.signing {
            tx.output[0].value = Amount::from_sat(1);
        }
        let hex = hex::encode(bitcoin::consensus::encode::serialize(&tx));
        match self.signing {
            Signing::Incomplete => json!({"hex": hex_tx, "complete": false, "errors": [
                {"txid": "c".repeat(64), "vout": 3, "witness": [], "scriptSig": "",
                 "sequence": 4294967293u32, "error": "Unable to sign input, invalid stack size"}]}),
            _ => json!({"hex": hex, "complete": true}),
        }
    }
}

impl WalletRpc for RecordedWallet {
    fn call_json(&self, method: &str, params: &[Value]) -> Result<Value, String> {
        self.calls
            .borrow_mut()
            .push((method.to_owned(), params.to_vec()));
        match method {
            "listunspent" => Ok(self.listunspent.clone()),
            "getrawchangeaddress" => Ok(json!(self.change_address)),
            "signrawtransactionwithwallet" => Ok(self.sign(params[0].as_str().unwrap())),
            other => Err(format!("the fake wallet was not asked to answer {other}")),
        }
    }
}

/// `listunspent 1` as documented: txid, vout, address, label, scriptPubKey, amount (BTC),
/// confirmations, spendable, solvable, desc, safe.
fn listunspent() -> Value {
    json!([
        {"txid": "a".repeat(64), "vout": 1, "address": "bcrt1qa", "label": "",
         "scriptPubKey": "0014aa", "amount": 0.5, "confirmations": 10, "spendable": true,
         "solvable": true, "desc": "wpkh([d34db33f/84h/1h/0h/0/0]02aa)#abcd", "safe": true},
        {"txid": "c".repeat(64), "vout": 3, "address": "bcrt1qc", "label": "",
         "scriptPubKey": "0014cc", "amount": 1.25, "confirmations": 3, "spendable": true,
         "solvable": true, "desc": "wpkh([d34db33f/84h/1h/0h/0/1]02cc)#abcd", "safe": true},
        {"txid": "d".repeat(64), "vout": 0, "address": "bcrt1qd", "label": "",
         "scriptPubKey": "0014dd", "amount": 5.0, "confirmations": 50, "spendable": false,
         "solvable": false, "safe": true}
    ])
}

/// A regtest P2WPKH address, as `getrawchangeaddress` answers it (a bare JSON string).
fn change_address() -> Address {
    let spk = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x75; 20]));
    Address::from_script(&spk, Network::Regtest).unwrap()
}

/// The plan the policy decides for round 0 at 2 sat/vB estimated.
fn plan() -> otsd::stamper::TxPlan {
    let state = StamperState::new(6);
    let obs = Observation {
        now: 1_000,
        height: 200,
        last_sealed_round: Some(0),
        estimate_sat_per_kvb: Some(2_000),
        relay_sat_per_kvb: 1_000,
        next_tx_at: 0,
    };
    match decide(&state, &StamperConfig::default(), &obs) {
        Decision::Send(plan) => plan,
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn wallet_signer_spends_a_listed_coin_with_change_to_the_wallet_and_the_tip() {
    let rpc = RecordedWallet::new(Signing::Complete);
    let plan = plan();
    let tip = [0x42; 32];
    let coin = wallet_coin(&rpc).unwrap();
    let tx = wallet_stamp_tx(
        &rpc,
        Network::Regtest,
        &coin,
        plan.fee_sat,
        &tip,
        plan.locktime,
    )
    .unwrap();

    let largest = OutPoint::new("c".repeat(64).parse::<Txid>().unwrap(), 3);
    assert_eq!(tx.input.len(), 1);
    assert_eq!(tx.input[0].previous_output, largest);
    assert!(tx.input[0].sequence.is_rbf());
    assert_eq!(
        tx.input[0].witness.len(),
        2,
        "the wallet's signature is kept"
    );
    assert_eq!(tx.output.len(), 2);
    assert_eq!(tx.output[0].script_pubkey, change_address().script_pubkey());
    assert_eq!(committed_tip(&tx), Some(tip));
    let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert!(plan.fee_sat > 0);
    assert_eq!(125_000_000 - out, plan.fee_sat, "fee as decided");
    assert_eq!(tx.lock_time.to_consensus_u32(), plan.locktime);

    let methods: Vec<String> = rpc.calls.borrow().iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        methods,
        [
            "listunspent",
            "getrawchangeaddress",
            "signrawtransactionwithwallet"
        ]
    );
    assert_eq!(rpc.calls.borrow()[0].1, [json!(1)], "only confirmed coins");
}

#[test]
fn wallet_signer_refuses_incomplete_or_altered_signing_and_reports_no_coins() {
    let plan = plan();
    for (signing, expected) in [
        (Signing::Incomplete, "Unable to sign input"),
        (Signing::Tampered, "changed the transaction"),
    ] {
        let rpc = RecordedWallet::new(signing);
        let coin = wallet_coin(&rpc).unwrap();
        let err =
            wallet_stamp_tx(&rpc, Network::Regtest, &coin, plan.fee_sat, &[1; 32], 0).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
    let mut rpc = RecordedWallet::new(Signing::Complete);
    rpc.listunspent = json!([]);
    let err = wallet_coin(&rpc).unwrap_err();
    assert!(err.contains("no confirmed spendable output"), "{err}");
    let rpc = RecordedWallet::new(Signing::Complete);
    let coin = wallet_coin(&rpc).unwrap();
    let err =
        wallet_stamp_tx(&rpc, Network::Bitcoin, &coin, plan.fee_sat, &[1; 32], 0).unwrap_err();
    assert!(err.contains("getrawchangeaddress"), "{err}");
}
