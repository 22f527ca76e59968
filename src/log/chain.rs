//! The two chains over records: the public SHA-256 hash chain and the HMAC-SHA256 tag chain.
//!
//! Both advance once per record, never per event (see `log-format/README.md`, "Chains and checksums").
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The domain-separation message of [`LogKey::derive`].
pub const KEY_DERIVATION_MESSAGE: &[u8] = b"otsd log chain v1";

/// The key of the HMAC chain, derived from the calendar's `hmac-key`, with the HMAC state after
/// the key blocks prepared once (each chain step then hashes two blocks fewer).
#[derive(Clone)]
pub struct LogKey([u8; 32], crate::sha::PairMac);

impl LogKey {
    /// Derives the log-chain key: `HMAC-SHA256(calendar_hmac_key, "otsd log chain v1")`.
    pub fn derive(calendar_hmac_key: &[u8]) -> LogKey {
        let mut mac = new_mac(calendar_hmac_key);
        mac.update(KEY_DERIVATION_MESSAGE);
        LogKey::from_bytes(mac.finalize().into_bytes().into())
    }

    /// Wraps an already derived key.
    pub fn from_bytes(bytes: [u8; 32]) -> LogKey {
        LogKey(bytes, crate::sha::PairMac::new(&bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogKey(..)")
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    }
}

/// Chain values after some record: `h_i` (public) and `t_i` (HMAC). Genesis is all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainState {
    /// Public hash chain value.
    pub hash: [u8; 32],
    /// HMAC chain value.
    pub tag: [u8; 32],
}

impl ChainState {
    /// The chain values before the first record of the log.
    pub const GENESIS: ChainState = ChainState {
        hash: [0; 32],
        tag: [0; 32],
    };

    /// `h_i = SHA-256(h_{i-1} || body)`.
    pub fn next_hash(&self, body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.hash);
        h.update(body);
        h.finalize().into()
    }

    /// `t_i = HMAC-SHA256(K, t_{i-1} || h_i)`.
    pub fn next_tag(&self, key: &LogKey, hash: &[u8; 32]) -> [u8; 32] {
        key.1.tag(&self.tag, hash)
    }
}

/// The head of the log: the chain values after the last record and the next sequence number.
/// Compare it with a head kept elsewhere to detect truncation of the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence number the next event will get.
    pub next_seq: u64,
    /// Chain values after the last record.
    pub chain: ChainState,
}
