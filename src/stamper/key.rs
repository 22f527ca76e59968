//! The calendar's own signing key and the stamping transaction it signs.
//!
//! A stamping transaction has exactly one P2WPKH input (a coin of this key), a P2WPKH change output
//! back to the key at index 0, and a zero-value `OP_RETURN <32-byte tip>` at index 1. The input
//! signals replace-by-fee; nLockTime is the best height when built (as the Python stamper sets it).
//! Signing is deterministic (RFC 6979), so building is a pure function of its arguments.
use bitcoin::absolute::LockTime;
use bitcoin::key::{CompressedPublicKey, Secp256k1};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// Index of the change output in a stamping transaction.
pub const CHANGE_VOUT: u32 = 0;
/// Index of the `OP_RETURN` output.
pub const TIP_VOUT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the stamper key is not a valid secp256k1 secret key")]
    Invalid,
    #[error("fee {fee_sat} sat leaves no change from a coin of {value_sat} sat")]
    FeeExceedsCoin { fee_sat: u64, value_sat: u64 },
    #[error("signing: {0}")]
    Sighash(String),
}

/// An unspent output of the stamper key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coin {
    pub outpoint: OutPoint,
    pub value_sat: u64,
}

/// The stamper's key pair.
pub struct StamperKey {
    secret: SecretKey,
    public: CompressedPublicKey,
    secp: Secp256k1<All>,
}

impl std::fmt::Debug for StamperKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StamperKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The funding address of the calendar in `dir` on `network`, creating the key file if the
/// directory predates it.
pub fn funding_address(
    dir: &crate::calendar::dir::CalendarDir,
    network: Network,
) -> Result<Address, StamperKeyLoadError> {
    let key = StamperKey::from_bytes(&dir.stamper_key()?)?;
    Ok(key.address(network))
}

/// Why the calendar's stamper key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StamperKeyLoadError {
    #[error(transparent)]
    Dir(#[from] crate::calendar::dir::DirError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl StamperKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<StamperKey, KeyError> {
        let secp = Secp256k1::new();
        let secret = SecretKey::from_slice(bytes).map_err(|_| KeyError::Invalid)?;
        let public = CompressedPublicKey(secret.public_key(&secp));
        Ok(StamperKey {
            secret,
            public,
            secp,
        })
    }

    /// The P2WPKH address that funds the calendar.
    pub fn address(&self, network: Network) -> Address {
        Address::p2wpkh(&self.public, network)
    }

    pub fn script_pubkey(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public.wpubkey_hash())
    }

    /// Builds and signs the stamping transaction spending `coin`, paying `fee_sat`, committing to
    /// `tip`.
    pub fn stamp_tx(
        &self,
        coin: &Coin,
        fee_sat: u64,
        tip: &[u8; 32],
        locktime: u32,
    ) -> Result<Transaction, KeyError> {
        let mut tx = unsigned_stamp_tx(coin, self.script_pubkey(), fee_sat, tip, locktime)?;
        self.sign(&mut tx, coin.value_sat)?;
        Ok(tx)
    }

    fn sign(&self, tx: &mut Transaction, value_sat: u64) -> Result<(), KeyError> {
        let spk = self.script_pubkey();
        let mut cache = SighashCache::new(&mut *tx);
        let sighash = cache
            .p2wpkh_signature_hash(0, &spk, Amount::from_sat(value_sat), EcdsaSighashType::All)
            .map_err(|e| KeyError::Sighash(e.to_string()))?;
        let msg = Message::from(sighash);
        let signature = bitcoin::ecdsa::Signature {
            signature: self.secp.sign_ecdsa(&msg, &self.secret),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[0].witness = Witness::p2wpkh(&signature, &self.public.0);
        Ok(())
    }
}

/// The unsigned stamping transaction spending `coin`, with change to `change_script`.
pub fn unsigned_stamp_tx(
    coin: &Coin,
    change_script: ScriptBuf,
    fee_sat: u64,
    tip: &[u8; 32],
    locktime: u32,
) -> Result<Transaction, KeyError> {
    let change = coin
        .value_sat
        .checked_sub(fee_sat)
        .filter(|c| *c > 0)
        .ok_or(KeyError::FeeExceedsCoin {
            fee_sat,
            value_sat: coin.value_sat,
        })?;
    Ok(Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_height(locktime).unwrap_or(LockTime::ZERO),
        input: vec![TxIn {
            previous_output: coin.outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(change),
                script_pubkey: change_script,
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::new_op_return(tip),
            },
        ],
    })
}

/// The tip committed by a stamping transaction, if `tx` has that shape.
pub fn committed_tip(tx: &Transaction) -> Option<[u8; 32]> {
    let out = tx.output.get(TIP_VOUT as usize)?;
    let bytes = out.script_pubkey.as_bytes();
    // OP_RETURN, OP_PUSHBYTES_32, 32 bytes
    match bytes {
        [0x6a, 0x20, rest @ ..] => rest.try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn stamp_tx_has_the_python_shape_and_fits_the_size_bound() {
        let key = StamperKey::from_bytes(&[7; 32]).unwrap();
        let coin = Coin {
            outpoint: OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 3),
            value_sat: 100_000,
        };
        let tx = key.stamp_tx(&coin, 1_000, &[9; 32], 150).unwrap();
        assert_eq!(tx.input.len(), 1);
        assert_eq!(tx.output[CHANGE_VOUT as usize].value.to_sat(), 99_000);
        assert_eq!(
            tx.output[CHANGE_VOUT as usize].script_pubkey,
            key.script_pubkey()
        );
        assert_eq!(committed_tip(&tx), Some([9; 32]));
        assert_eq!(tx.lock_time, LockTime::from_height(150).unwrap());
        assert!(tx.input[0].sequence.is_rbf());
        assert!(tx.vsize() as u64 <= super::super::policy::STAMP_TX_VSIZE);
        assert_eq!(tx.input[0].witness.len(), 2);
        assert!(key.stamp_tx(&coin, 100_000, &[9; 32], 150).is_err());
    }

    #[test]
    fn address_per_network() {
        let key = StamperKey::from_bytes(&[7; 32]).unwrap();
        assert!(key
            .address(Network::Regtest)
            .to_string()
            .starts_with("bcrt1q"));
        assert!(key
            .address(Network::Testnet)
            .to_string()
            .starts_with("tb1q"));
        assert!(key
            .address(Network::Bitcoin)
            .to_string()
            .starts_with("bc1q"));
        assert!(StamperKey::from_bytes(&[0; 32]).is_err());
    }
}
