//! SHA-256 of the short, fixed-shape messages a replay hashes millions of times (a digest, a
//! commitment, a salted key, a pair of tree nodes, an HMAC chain step), fed straight to the
//! compression function: for a message of one or two blocks, the general hasher's buffering and
//! finalization cost about as much as the compression itself. Same results as [`Sha256`] and
//! [`Hmac`] (tests compare them). Imports nothing else of ours.
use hmac::{Hmac, Mac};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The longest message [`short`] hashes in one block (the rest of the block holds the padding).
pub const ONE_BLOCK_MAX: usize = 55;

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// The padding block after a message of whole blocks, `len` bytes long.
const fn padding_block(len: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    let bits = (len * 8).to_be_bytes();
    let mut i = 0;
    while i < 8 {
        b[56 + i] = bits[i];
        i += 1;
    }
    b
}

fn output(state: &[u32; 8]) -> Hash {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// SHA-256 of `parts` joined, at most [`ONE_BLOCK_MAX`] bytes in all: one compression.
fn one_block(parts: &[&[u8]]) -> Hash {
    let mut block = [0u8; 64];
    let mut len = 0;
    for p in parts {
        block[len..len + p.len()].copy_from_slice(p);
        len += p.len();
    }
    block[len] = 0x80;
    block[56..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    let mut state = IV;
    compress(&mut state, &block);
    output(&state)
}

/// SHA-256 of `msg`.
pub fn short(msg: &[u8]) -> Hash {
    if msg.len() > ONE_BLOCK_MAX {
        return Sha256::digest(msg).into();
    }
    one_block(&[msg])
}

/// SHA-256 of `a || b` (at most [`ONE_BLOCK_MAX`] bytes in all, else through the hasher).
pub fn concat(a: &[u8], b: &[u8]) -> Hash {
    if a.len() + b.len() > ONE_BLOCK_MAX {
        return Sha256::new()
            .chain_update(a)
            .chain_update(b)
            .finalize()
            .into();
    }
    one_block(&[a, b])
}

/// SHA-256 of `left || right`: a Merkle tree node.
pub fn pair(left: &Hash, right: &Hash) -> Hash {
    const PAD: [u8; 64] = padding_block(64);
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    let mut state = IV;
    compress(&mut state, &block);
    compress(&mut state, &PAD);
    output(&state)
}

/// An HMAC-SHA256 key with its inner and outer states prepared, for messages of two hashes.
#[derive(Clone)]
pub struct PairMac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl PairMac {
    pub fn new(key: &[u8]) -> PairMac {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let state = |pad: u8| {
            let mut block = k;
            for b in &mut block {
                *b ^= pad;
            }
            let mut state = IV;
            compress(&mut state, &block);
            state
        };
        PairMac {
            inner: state(0x36),
            outer: state(0x5c),
        }
    }

    /// HMAC-SHA256 of `a || b`: three compressions.
    pub fn tag(&self, a: &Hash, b: &Hash) -> Hash {
        // The inner hash covers the key block and these 64 bytes; the outer one the key block
        // and the inner hash.
        const INNER_PAD: [u8; 64] = padding_block(128);
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(a);
        block[32..].copy_from_slice(b);
        let mut inner = self.inner;
        compress(&mut inner, &block);
        compress(&mut inner, &INNER_PAD);
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&output(&inner));
        block[32] = 0x80;
        block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
        let mut outer = self.outer;
        compress(&mut outer, &block);
        output(&outer)
    }
}

/// The general HMAC, for checking [`PairMac`].
pub fn hmac(key: &[u8], msg: &[u8]) -> Hash {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn each_shape_equals_the_general_hasher() {
        for n in 0..140 {
            let m = bytes(n, 7);
            assert_eq!(short(&m), <Hash>::from(Sha256::digest(&m)), "{n} bytes");
            for split in [0, n / 2, n] {
                let (a, b) = m.split_at(split);
                assert_eq!(concat(a, b), <Hash>::from(Sha256::digest(&m)), "{n} bytes");
            }
        }
        let (l, r): (Hash, Hash) = (short(b"l"), short(b"r"));
        assert_eq!(pair(&l, &r), <Hash>::from(Sha256::digest([l, r].concat())));
        assert_eq!(
            short(b"abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ],
            "the FIPS 180-2 example"
        );
    }

    #[test]
    fn the_pair_mac_equals_the_general_hmac() {
        for key_len in [0, 1, 32, 63, 64, 65, 100] {
            let key = bytes(key_len, 3);
            let mac = PairMac::new(&key);
            let (a, b) = (short(&bytes(9, 1)), short(&bytes(9, 2)));
            assert_eq!(
                mac.tag(&a, &b),
                hmac(&key, &[a, b].concat()),
                "key of {key_len}"
            );
        }
    }
}
