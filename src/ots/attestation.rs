//! Attestations: the leaves of a timestamp tree, each claiming its message existed at some time.
//!
//! On the wire an attestation is `0x00`-introduced by the timestamp, then an 8-byte tag and the
//! payload as varbytes (so unknown kinds can be skipped and kept verbatim). Kinds python knows are
//! decoded, including Litecoin and Ethereum, because python sorts known kinds by their fields and
//! unknown ones by raw payload, and that order is part of the serialization.

use std::cmp::Ordering;

use super::error::DecodeError;
use super::ser::{varuint_len, write_varbytes, write_varuint, Reader};

pub const TAG_LEN: usize = 8;
pub const TAG_PENDING: [u8; TAG_LEN] = [0x83, 0xdf, 0xe3, 0x0d, 0x2e, 0xf9, 0x0c, 0x8e];
pub const TAG_BITCOIN: [u8; TAG_LEN] = [0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01];
pub const TAG_LITECOIN: [u8; TAG_LEN] = [0x06, 0x86, 0x9a, 0x0d, 0x73, 0xd7, 0x1b, 0x45];
pub const TAG_ETHEREUM: [u8; TAG_LEN] = [0x30, 0xfe, 0x80, 0x87, 0xb5, 0xc7, 0xea, 0xd7];

/// Largest payload accepted (python `TimeAttestation.MAX_PAYLOAD_SIZE`).
pub const MAX_PAYLOAD_LEN: usize = 8192;
/// Longest pending-attestation URI (python `PendingAttestation.MAX_URI_LENGTH`).
pub const MAX_URI_LEN: usize = 1000;
/// The only bytes a pending URI may contain: no queries, fragments, logins or percent-escapes.
pub const URI_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._/:";

/// A time attestation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attestation {
    /// The calendar at `uri` will upgrade this later. Construct with [`Attestation::pending`].
    Pending {
        uri: String,
    },
    /// The message is the Merkle root of the Bitcoin block at `height`.
    Bitcoin {
        height: u64,
    },
    Litecoin {
        height: u64,
    },
    Ethereum {
        height: u64,
    },
    /// A kind we do not know, kept byte for byte.
    Unknown {
        tag: [u8; TAG_LEN],
        payload: Vec<u8>,
    },
}

/// Whether python would accept `uri` in a pending attestation.
pub fn is_valid_uri(uri: &[u8]) -> bool {
    uri.len() <= MAX_URI_LEN && uri.iter().all(|c| URI_CHARS.contains(c))
}

impl Attestation {
    /// A pending attestation, or `None` if python would refuse the URI.
    pub fn pending(uri: &str) -> Option<Attestation> {
        is_valid_uri(uri.as_bytes()).then(|| Attestation::Pending {
            uri: uri.to_owned(),
        })
    }

    pub fn tag(&self) -> [u8; TAG_LEN] {
        match self {
            Attestation::Pending { .. } => TAG_PENDING,
            Attestation::Bitcoin { .. } => TAG_BITCOIN,
            Attestation::Litecoin { .. } => TAG_LITECOIN,
            Attestation::Ethereum { .. } => TAG_ETHEREUM,
            Attestation::Unknown { tag, .. } => *tag,
        }
    }

    /// Appends tag and varbytes payload (not the `0x00` that introduces an attestation).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag());
        match self {
            Attestation::Pending { uri } => {
                let len = uri.len() as u64;
                write_varuint(out, varuint_len(len) as u64 + len);
                write_varbytes(out, uri.as_bytes());
            }
            Attestation::Bitcoin { height }
            | Attestation::Litecoin { height }
            | Attestation::Ethereum { height } => {
                write_varuint(out, varuint_len(*height) as u64);
                write_varuint(out, *height);
            }
            Attestation::Unknown { payload, .. } => write_varbytes(out, payload),
        }
    }

    /// Reads tag and payload. Known kinds must consume their whole payload, as in python.
    pub fn read(r: &mut Reader<'_>) -> Result<Attestation, DecodeError> {
        let tag = r.read_array::<TAG_LEN>()?;
        let payload = r.read_varbytes(0, MAX_PAYLOAD_LEN)?;
        let base = r.position() - payload.len();
        decode_payload(tag, payload).map_err(|e| rebase(e, base))
    }

    /// The field python compares two attestations of the same kind by.
    fn sort_key(&self) -> (Option<u64>, &[u8]) {
        match self {
            Attestation::Pending { uri } => (None, uri.as_bytes()),
            Attestation::Bitcoin { height }
            | Attestation::Litecoin { height }
            | Attestation::Ethereum { height } => (Some(*height), &[]),
            Attestation::Unknown { payload, .. } => (None, payload),
        }
    }
}

fn decode_payload(tag: [u8; TAG_LEN], payload: &[u8]) -> Result<Attestation, DecodeError> {
    let mut p = Reader::new(payload);
    let attestation = match tag {
        TAG_PENDING => read_pending(&mut p)?,
        TAG_BITCOIN => Attestation::Bitcoin {
            height: p.read_varuint()?,
        },
        TAG_LITECOIN => Attestation::Litecoin {
            height: p.read_varuint()?,
        },
        TAG_ETHEREUM => Attestation::Ethereum {
            height: p.read_varuint()?,
        },
        tag => {
            return Ok(Attestation::Unknown {
                tag,
                payload: payload.to_vec(),
            })
        }
    };
    p.expect_end()?;
    Ok(attestation)
}

fn read_pending(p: &mut Reader<'_>) -> Result<Attestation, DecodeError> {
    let offset = p.position();
    let uri = p.read_varbytes(0, MAX_URI_LEN)?;
    // Allowed characters are ASCII, so bytes that are not UTF-8 are invalid anyway.
    match std::str::from_utf8(uri) {
        Ok(uri) if is_valid_uri(uri.as_bytes()) => Ok(Attestation::Pending {
            uri: uri.to_owned(),
        }),
        _ => Err(DecodeError::InvalidUri { offset }),
    }
}

/// Turns an offset inside a payload into an offset inside the whole input.
fn rebase(err: DecodeError, base: usize) -> DecodeError {
    use DecodeError::*;
    match err {
        Truncated {
            offset,
            wanted,
            available,
        } => Truncated {
            offset: offset + base,
            wanted,
            available,
        },
        VarUintOverflow { offset } => VarUintOverflow {
            offset: offset + base,
        },
        LengthOutOfRange {
            offset,
            len,
            min,
            max,
        } => LengthOutOfRange {
            offset: offset + base,
            len,
            min,
            max,
        },
        InvalidUri { offset } => InvalidUri {
            offset: offset + base,
        },
        TrailingBytes { offset, count } => TrailingBytes {
            offset: offset + base,
            count,
        },
        other => other,
    }
}

impl Ord for Attestation {
    /// python's `TimeAttestation.__lt__`: different kinds by tag, same kind by URI, height or
    /// (for unknown kinds) payload bytes.
    fn cmp(&self, other: &Self) -> Ordering {
        self.tag()
            .cmp(&other.tag())
            .then_with(|| self.sort_key().cmp(&other.sort_key()))
    }
}

impl PartialOrd for Attestation {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(a: &Attestation) -> Vec<u8> {
        let mut out = Vec::new();
        a.write(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(&Attestation::read(&mut r).unwrap(), a);
        assert_eq!(r.expect_end(), Ok(()));
        out
    }

    #[test]
    fn pending_payload_is_varbytes_of_varbytes() {
        let a = Attestation::pending("http://127.0.0.1:14788").unwrap();
        let bytes = roundtrip(&a);
        assert_eq!(
            hex::encode(bytes),
            "83dfe30d2ef90c8e1716687474703a2f2f3132372e302e302e313a3134373838"
        );
    }

    #[test]
    fn known_kinds_roundtrip() {
        roundtrip(&Attestation::Bitcoin { height: 358_391 });
        roundtrip(&Attestation::Litecoin { height: 0 });
        roundtrip(&Attestation::Ethereum { height: u64::MAX });
        roundtrip(&Attestation::Unknown {
            tag: [1; 8],
            payload: vec![],
        });
        roundtrip(&Attestation::pending(&"a".repeat(MAX_URI_LEN)).unwrap());
    }

    #[test]
    fn bad_uris_are_refused() {
        assert!(Attestation::pending("https://x/?q=1").is_none());
        assert!(Attestation::pending(&"a".repeat(MAX_URI_LEN + 1)).is_none());
        let mut bytes = TAG_PENDING.to_vec();
        bytes.extend_from_slice(&[3, 2, b'a', b'?']);
        assert_eq!(
            Attestation::read(&mut Reader::new(&bytes)),
            Err(DecodeError::InvalidUri { offset: 9 })
        );
    }

    #[test]
    fn known_payload_with_trailing_bytes_is_refused() {
        let mut bytes = TAG_BITCOIN.to_vec();
        bytes.extend_from_slice(&[2, 5, 0]);
        let err = Attestation::read(&mut Reader::new(&bytes)).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TrailingBytes {
                offset: 10,
                count: 1
            }
        ));
    }

    #[test]
    fn ordering_follows_python() {
        let mut v = [
            Attestation::pending("b").unwrap(),
            Attestation::Bitcoin { height: 300 },
            Attestation::pending("a").unwrap(),
            Attestation::Bitcoin { height: 2 },
        ];
        v.sort();
        assert_eq!(v[0], Attestation::Bitcoin { height: 2 });
        assert_eq!(v[1], Attestation::Bitcoin { height: 300 });
        assert_eq!(v[2], Attestation::pending("a").unwrap());
    }
}
