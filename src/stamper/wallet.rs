//! The optional Bitcoin Core wallet signer (`otsd --btc-wallet`), as the Python otsd signs: coins
//! from `listunspent`, change to a `getrawchangeaddress` of the wallet, signatures from
//! `signrawtransactionwithwallet`. The transaction has the same shape as with the calendar's own
//! key (one input, change, OP_RETURN of the tip), so the policy and the proofs do not care who
//! signed.
//!
//! The RPC calls go through the small [`WalletRpc`] trait so that the sequence can be tested without
//! a node. No wallet-enabled Bitcoin Core can be built in this environment, so the tests replay
//! answers recorded in the shapes Bitcoin Core documents for these RPCs (`help listunspent` etc.);
//! they are not captured from a live node.
use std::str::FromStr;

use bitcoin::{Address, Network, OutPoint, ScriptBuf, Transaction, Txid};
use serde_json::{json, Value};

use super::key::{unsigned_stamp_tx, Coin};

/// `listunspent` minimum confirmations: only mined coins, as the Python stamper.
pub const WALLET_MIN_CONF: u64 = 1;

/// The JSON-RPC calls the wallet signer needs; Bitcoin Core's client in otsd, a fake in tests.
pub trait WalletRpc {
    fn call_json(&self, method: &str, params: &[Value]) -> Result<Value, String>;
}

impl WalletRpc for bitcoincore_rpc::Client {
    fn call_json(&self, method: &str, params: &[Value]) -> Result<Value, String> {
        bitcoincore_rpc::RpcApi::call(self, method, params)
            .map_err(|e| format!("Bitcoin Core {method}: {e}"))
    }
}

/// The wallet's coin to spend for a new cycle (`listunspent`).
pub fn wallet_coin(rpc: &dyn WalletRpc) -> Result<Coin, String> {
    let unspent = rpc.call_json("listunspent", &[json!(WALLET_MIN_CONF)])?;
    pick_coin(&unspent).map_err(|e| e.to_string())
}

/// Builds the stamping transaction spending `coin` with change to a fresh wallet change address
/// and has the wallet sign it. Refuses a signed transaction whose inputs or outputs differ from
/// what was asked for.
pub fn wallet_stamp_tx(
    rpc: &dyn WalletRpc,
    network: Network,
    coin: &Coin,
    fee_sat: u64,
    tip: &[u8; 32],
    locktime: u32,
) -> Result<Transaction, String> {
    let addr = rpc.call_json("getrawchangeaddress", &[])?;
    let change = change_script_of(&addr, network).map_err(|e| e.to_string())?;
    let unsigned =
        unsigned_stamp_tx(coin, change, fee_sat, tip, locktime).map_err(|e| e.to_string())?;
    let hex_tx = hex::encode(bitcoin::consensus::encode::serialize(&unsigned));
    let answer = rpc.call_json("signrawtransactionwithwallet", &[json!(hex_tx)])?;
    let signed = signed_tx(&answer).map_err(|e| e.to_string())?;
    let same_inputs = signed.input.len() == 1
        && signed.input[0].previous_output == coin.outpoint
        && signed.input[0].sequence == unsigned.input[0].sequence;
    if !same_inputs || signed.output != unsigned.output || signed.lock_time != unsigned.lock_time {
        return Err(WalletError::Altered.to_string());
    }
    Ok(signed)
}

/// Outputs at or below this many satoshis are not worth spending (the Python stamper's `DUST`).
pub const WALLET_DUST_SAT: u64 = 546;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalletError {
    #[error("the wallet has no confirmed spendable output above {WALLET_DUST_SAT} sat")]
    NoCoins,
    #[error("getrawchangeaddress did not answer an address of this network")]
    BadChangeAddress,
    #[error("signrawtransactionwithwallet did not complete: {0}")]
    Incomplete(String),
    #[error("signrawtransactionwithwallet returned an undecodable transaction")]
    BadHex,
    #[error("signrawtransactionwithwallet changed the transaction's inputs or outputs")]
    Altered,
}

/// The largest confirmed, spendable, non-dust output in a `listunspent` answer.
pub fn pick_coin(listunspent: &Value) -> Result<Coin, WalletError> {
    listunspent
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["spendable"].as_bool().unwrap_or(false))
        .filter(|u| u["confirmations"].as_u64().unwrap_or(0) >= 1)
        .filter_map(|u| {
            let txid: Txid = u["txid"].as_str()?.parse().ok()?;
            let vout = u32::try_from(u["vout"].as_u64()?).ok()?;
            let value_sat = bitcoin::Amount::from_btc(u["amount"].as_f64()?)
                .ok()?
                .to_sat();
            Some(Coin {
                outpoint: OutPoint::new(txid, vout),
                value_sat,
            })
        })
        .filter(|c| c.value_sat > WALLET_DUST_SAT)
        .max_by_key(|c| c.value_sat)
        .ok_or(WalletError::NoCoins)
}

/// The change output script from a `getrawchangeaddress` answer (a JSON string).
pub fn change_script_of(answer: &Value, network: Network) -> Result<ScriptBuf, WalletError> {
    let addr = answer.as_str().ok_or(WalletError::BadChangeAddress)?;
    let addr = Address::from_str(addr).map_err(|_| WalletError::BadChangeAddress)?;
    let addr = addr
        .require_network(network)
        .map_err(|_| WalletError::BadChangeAddress)?;
    Ok(addr.script_pubkey())
}

/// The signed transaction from a `signrawtransactionwithwallet` answer, if complete.
pub fn signed_tx(answer: &Value) -> Result<Transaction, WalletError> {
    if answer["complete"].as_bool() != Some(true) {
        return Err(WalletError::Incomplete(answer["errors"].to_string()));
    }
    let bytes = answer["hex"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or(WalletError::BadHex)?;
    bitcoin::consensus::encode::deserialize(&bytes).map_err(|_| WalletError::BadHex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamper::key::{committed_tip, StamperKey};
    use serde_json::json;

    /// `listunspent 0 999999` as documented: an array of objects with txid, vout, address,
    /// scriptPubKey, amount (BTC), confirmations, spendable, solvable, safe.
    fn listunspent() -> Value {
        json!([
            {"txid": "a".repeat(64), "vout": 1, "address": "bcrt1qx", "scriptPubKey": "0014aa",
             "amount": 0.5, "confirmations": 10, "spendable": true, "solvable": true, "safe": true},
            {"txid": "b".repeat(64), "vout": 0, "address": "bcrt1qy", "scriptPubKey": "0014bb",
             "amount": 2.0, "confirmations": 0, "spendable": true, "solvable": true, "safe": false},
            {"txid": "c".repeat(64), "vout": 3, "address": "bcrt1qz", "scriptPubKey": "0014cc",
             "amount": 1.25, "confirmations": 3, "spendable": true, "solvable": true, "safe": true},
            {"txid": "d".repeat(64), "vout": 0, "address": "bcrt1qw", "scriptPubKey": "0014dd",
             "amount": 5.0, "confirmations": 50, "spendable": false, "solvable": false, "safe": true},
            {"txid": "e".repeat(64), "vout": 0, "address": "bcrt1qv", "scriptPubKey": "0014ee",
             "amount": 0.00000500, "confirmations": 50, "spendable": true, "solvable": true, "safe": true}
        ])
    }

    #[test]
    fn picks_the_largest_confirmed_spendable_coin() {
        let coin = pick_coin(&listunspent()).unwrap();
        assert_eq!(coin.outpoint.txid.to_string(), "c".repeat(64));
        assert_eq!(coin.outpoint.vout, 3);
        assert_eq!(coin.value_sat, 125_000_000);
        assert_eq!(pick_coin(&json!([])), Err(WalletError::NoCoins));
    }

    #[test]
    fn builds_and_reads_back_a_wallet_signed_tx() {
        // getrawchangeaddress answers a bare address string.
        let key = StamperKey::from_bytes(&[9; 32]).unwrap();
        let spk = key.script_pubkey();
        let answer = json!(key.address(Network::Regtest).to_string());
        let change = change_script_of(&answer, Network::Regtest).unwrap();
        assert_eq!(change, spk);
        let coin = pick_coin(&listunspent()).unwrap();
        let tx = unsigned_stamp_tx(&coin, change, 300, &[4; 32], 200).unwrap();
        // signrawtransactionwithwallet answers {hex, complete, errors?}; we replay the unsigned
        // tx as its hex since only the shape matters here.
        let hex_tx = hex::encode(bitcoin::consensus::encode::serialize(&tx));
        let back = signed_tx(&json!({"hex": hex_tx, "complete": true})).unwrap();
        assert_eq!(back, tx);
        assert_eq!(committed_tip(&back), Some([4; 32]));
        let incomplete = json!({"hex": hex_tx, "complete": false,
            "errors": [{"txid": "c".repeat(64), "vout": 3, "error": "Unable to sign input"}]});
        assert!(
            matches!(signed_tx(&incomplete), Err(WalletError::Incomplete(e)) if e.contains("Unable to sign"))
        );
        assert_eq!(
            change_script_of(&json!({}), Network::Regtest),
            Err(WalletError::BadChangeAddress)
        );
        assert_eq!(
            change_script_of(&answer, Network::Bitcoin),
            Err(WalletError::BadChangeAddress)
        );
    }
}
