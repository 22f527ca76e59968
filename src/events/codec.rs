//! The one place that knows how event payloads are encoded (CBOR through `serde_cbor` today).
//!
//! `serde_cbor` is unmaintained; every caller goes through [`encode`] and [`decode`], so swapping the
//! codec touches this file only. Structs are written "packed" (fields by index, not by name), which
//! keeps a `DigestSubmitted` small; field order is therefore part of the format. What each event
//! writes (byte strings for fixed arrays, a seal without its derivable commitment) is decided by
//! its serde shape, in `wire.rs`, not here; the byte layout is in `log-format/README.md`.
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// A payload could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(String);

/// Encodes a value as packed CBOR.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    serde_cbor::ser::to_vec_packed(value).map_err(|e| CodecError(e.to_string()))
}

/// Decodes packed CBOR written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

/// Decodes packed CBOR written by [`encode`] into a value that borrows from `bytes` (byte
/// strings as slices, no copy).
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

/// `Event::CommitmentImported` written straight into `out` in [`encode`]'s bytes, from its parts
/// (`otsctl import-otsd` writes millions; `tests/event_vectors.rs` pins both forms): `proof` is
/// the concatenation of `proof_parts`, `None` for a pending commitment. With `suffix_seq_follows`
/// the event announces its fourth field, `suffix_seq`, which the caller appends with
/// [`suffix_seq_field`] once the sequence number is known.
pub fn commitment_imported_into(
    out: &mut Vec<u8>,
    round: u64,
    commitment: &[u8],
    proof_parts: Option<&[&[u8]]>,
    suffix_seq_follows: bool,
) {
    // {7: {0: round, 1: commitment, 2: proof | null[, 3: suffix_seq]}}
    out.extend_from_slice(&[0xa1, 0x07, if suffix_seq_follows { 0xa4 } else { 0xa3 }]);
    out.push(0x00);
    cbor_head(out, MAJOR_UINT, round);
    out.push(0x01);
    cbor_head(out, MAJOR_BYTES, commitment.len() as u64);
    out.extend_from_slice(commitment);
    out.push(0x02);
    match proof_parts {
        Some(parts) => {
            cbor_head(out, MAJOR_BYTES, parts.iter().map(|p| p.len() as u64).sum());
            for p in parts {
                out.extend_from_slice(p);
            }
        }
        None => out.push(CBOR_NULL),
    }
}

/// The `suffix_seq` field that [`commitment_imported_into`] announced.
pub fn suffix_seq_field(out: &mut Vec<u8>, suffix_seq: u64) {
    out.push(0x03);
    cbor_head(out, MAJOR_UINT, suffix_seq);
}

/// Bytes [`suffix_seq_field`] writes.
pub fn suffix_seq_field_len(suffix_seq: u64) -> usize {
    1 + cbor_head_len(suffix_seq)
}

/// `Event::ProofSuffixImported` written straight into `out`, in [`encode`]'s bytes.
pub fn proof_suffix_imported_into(out: &mut Vec<u8>, bytes: &[u8]) {
    // {8: {0: bytes}}
    out.extend_from_slice(&[0xa1, 0x08, 0xa1, 0x00]);
    cbor_head(out, MAJOR_BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

const MAJOR_UINT: u8 = 0x00;
const MAJOR_BYTES: u8 = 0x40;
const CBOR_NULL: u8 = 0xf6;

/// A CBOR head in its shortest form, as serde_cbor writes it.
fn cbor_head(out: &mut Vec<u8>, major: u8, v: u64) {
    match v {
        0..=23 => out.push(major | v as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, v as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn cbor_head_len(v: u64) -> usize {
    match v {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    /// The direct writers give [`encode`]'s bytes for every size class of every field.
    #[test]
    fn direct_imported_events_equal_serde() {
        let sizes = [0usize, 1, 23, 24, 255, 256, 65535, 65536];
        let numbers = [
            0u64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            1 << 40,
        ];
        for (i, &round) in numbers.iter().enumerate() {
            for &len in &sizes {
                let proof = vec![0xab; len];
                let commitment = vec![0xc0; [36, 44][i % 2]];
                let seq = numbers[(i + len) % numbers.len()];
                let split = len / 3;
                for suffix_seq in [None, Some(seq)] {
                    for with_proof in [false, true] {
                        let event = Event::CommitmentImported {
                            round,
                            commitment: commitment.clone(),
                            proof: with_proof.then(|| proof.clone()),
                            suffix_seq,
                        };
                        let mut out = Vec::new();
                        let parts: [&[u8]; 2] = [&proof[..split], &proof[split..]];
                        commitment_imported_into(
                            &mut out,
                            round,
                            &commitment,
                            with_proof.then_some(&parts[..]),
                            suffix_seq.is_some(),
                        );
                        if let Some(s) = suffix_seq {
                            let before = out.len();
                            suffix_seq_field(&mut out, s);
                            assert_eq!(out.len() - before, suffix_seq_field_len(s));
                        }
                        assert_eq!(out, encode(&event).unwrap(), "{event:?}");
                    }
                }
                let mut out = Vec::new();
                proof_suffix_imported_into(&mut out, &proof);
                let event = Event::ProofSuffixImported { bytes: proof };
                assert_eq!(out, encode(&event).unwrap());
            }
        }
    }
}
