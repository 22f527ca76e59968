//! The optional Bitcoin Core wallet signer, as the Python otsd signs: coins from `listunspent`,
//! change to a `getrawchangeaddress` of the wallet (script from `getaddressinfo`), signatures from
//! `signrawtransactionwithwallet`.
//!
//! Only the pure halves live here: reading those RPC answers and building the unsigned
//! transaction. No wallet-enabled Bitcoin Core can be built in this environment, so the tests replay
//! answers recorded in the shapes Bitcoin Core documents for these RPCs (`help listunspent` etc.);
//! they are not captured from a live node. Not yet selectable in otsd: the driver signs with the
//! calendar's own key (see [`super::key`]).
use bitcoin::{OutPoint, ScriptBuf, Transaction, Txid};
use serde_json::Value;

use super::key::Coin;

/// Outputs at or below this many satoshis are not worth spending (the Python stamper's `DUST`).
pub const WALLET_DUST_SAT: u64 = 546;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalletError {
    #[error("the wallet has no confirmed spendable output above {WALLET_DUST_SAT} sat")]
    NoCoins,
    #[error("getaddressinfo answer has no valid scriptPubKey")]
    BadAddressInfo,
    #[error("signrawtransactionwithwallet did not complete: {0}")]
    Incomplete(String),
    #[error("signrawtransactionwithwallet returned an undecodable transaction")]
    BadHex,
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

/// The change output script from a `getaddressinfo` answer.
pub fn change_script(getaddressinfo: &Value) -> Result<ScriptBuf, WalletError> {
    let hex = getaddressinfo["scriptPubKey"]
        .as_str()
        .ok_or(WalletError::BadAddressInfo)?;
    let bytes = hex::decode(hex).map_err(|_| WalletError::BadAddressInfo)?;
    Ok(ScriptBuf::from_bytes(bytes))
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
    use crate::stamper::key::{committed_tip, unsigned_stamp_tx, StamperKey};
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
        // getaddressinfo of a bech32 change address (abridged to the fields we read).
        let spk = StamperKey::from_bytes(&[9; 32]).unwrap().script_pubkey();
        let info = json!({"address": "bcrt1q...", "scriptPubKey": hex::encode(spk.as_bytes()),
                          "ismine": true, "iswitness": true});
        let change = change_script(&info).unwrap();
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
        assert_eq!(change_script(&json!({})), Err(WalletError::BadAddressInfo));
    }
}
