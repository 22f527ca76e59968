//! A borrowed view of the two events a replay folds millions of times, decoded without copying
//! or allocating: the digest and the commitment are slices of the payload.
//!
//! The view mirrors the first variants of [`super::Event`] (variants are encoded by index, so
//! its variant order must stay theirs), with the same field types where it does not borrow, so
//! that it accepts no payload the whole event would refuse: the fields the fold does not need
//! (the nonce, the root and MAC that the commitment repeats) are still checked. Any other event,
//! or an encoding the view does not know, fails to decode as a view; the caller then decodes the
//! whole [`super::Event`], which remains the definition. A test checks that both agree.
use serde::Deserialize;

use super::NONCE_LEN;

/// [`super::Event::DigestSubmitted`] or [`super::Event::RoundSealed`], borrowed. Fixed arrays
/// are read through `serde_bytes` as in the event (a byte string, or the integer array written
/// before the compact encoding), and a seal's commitment may be left out (compact) or present.
#[derive(Debug, Deserialize)]
pub enum EventView<'a> {
    DigestSubmitted {
        #[serde(borrow)]
        digest: &'a [u8],
        #[allow(dead_code)]
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        nonce: [u8; NONCE_LEN],
    },
    RoundSealed {
        round: u64,
        time: u32,
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        root: [u8; 32],
        #[serde(deserialize_with = "serde_bytes::deserialize")]
        mac: [u8; 8],
        #[serde(default, borrow)]
        commitment: Option<&'a [u8]>,
        digests: u32,
    },
}

impl<'a> EventView<'a> {
    /// Decodes `payload` as one of the two events: by hand when it is in the compact form otsd
    /// writes ([`compact`]), else through serde (the older forms, or the same event written with
    /// other CBOR heads). An error means another event, or bytes the whole event refuses too.
    pub fn read(payload: &'a [u8]) -> Result<EventView<'a>, super::codec::CodecError> {
        match compact(payload) {
            Some(view) => Ok(view),
            None => super::codec::decode_borrowed(payload),
        }
    }
}

/// The two events in exactly the layout otsd writes them (`log-format/README.md`, "Event
/// payloads"), read without serde: `a1 00 a2 00 <digest> 01 50 <nonce>`, or `a1 01 a5 00 <round>
/// 01 <time> 02 58 20 <root> 03 48 <mac> 05 <digests>` (the seal without its commitment). `None`
/// for anything else, which the caller hands to serde. Whatever this accepts, serde decodes to
/// the same view (a test checks it on mutated payloads): it takes a subset of CBOR (definite
/// lengths, fields in order, no field left out but the commitment) and checks every width and
/// range serde checks, and the whole payload must be read.
pub fn compact(payload: &[u8]) -> Option<EventView<'_>> {
    let mut c = Cbor(payload);
    c.expect(0xa1)?;
    let view = match c.byte()? {
        0x00 => {
            c.expect(0xa2)?;
            c.expect(0x00)?;
            let digest = c.bytes()?;
            c.expect(0x01)?;
            let nonce = c.fixed::<NONCE_LEN>()?;
            EventView::DigestSubmitted { digest, nonce }
        }
        0x01 => {
            c.expect(0xa5)?;
            c.expect(0x00)?;
            let round = c.uint()?;
            c.expect(0x01)?;
            let time = u32::try_from(c.uint()?).ok()?;
            c.expect(0x02)?;
            let root = c.fixed::<32>()?;
            c.expect(0x03)?;
            let mac = c.fixed::<8>()?;
            c.expect(0x05)?;
            let digests = u32::try_from(c.uint()?).ok()?;
            EventView::RoundSealed {
                round,
                time,
                root,
                mac,
                commitment: None,
                digests,
            }
        }
        _ => return None,
    };
    c.0.is_empty().then_some(view)
}

/// A reader of the few CBOR items [`compact`] takes.
struct Cbor<'a>(&'a [u8]);

impl<'a> Cbor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.byte()? == b).then_some(())
    }

    /// The argument of a head of major type `major` (definite: 0-23 or 1, 2, 4, 8 more bytes).
    fn head(&mut self, major: u8) -> Option<u64> {
        let b = self.byte()?;
        if b >> 5 != major {
            return None;
        }
        let width = match b & 0x1f {
            small @ 0..=23 => return Some(u64::from(small)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return None,
        };
        let mut v = [0u8; 8];
        v[8 - width..].copy_from_slice(self.take(width)?);
        Some(u64::from_be_bytes(v))
    }

    fn uint(&mut self) -> Option<u64> {
        self.head(0)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.head(2)?).ok()?;
        self.take(len)
    }

    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes()?.try_into().ok()
    }
}

/// A seal's commitment: the one it carries, or `time || root || mac` put back into `buf`, as the
/// whole event's decoding does.
pub fn seal_commitment<'a>(
    carried: Option<&'a [u8]>,
    time: u32,
    root: &[u8; 32],
    mac: &[u8; 8],
    buf: &'a mut [u8; 44],
) -> &'a [u8] {
    match carried {
        Some(c) => c,
        None => {
            *buf = super::wire::seal_commitment(time, root, mac);
            &buf[..]
        }
    }
}

/// The fields of a seal the fold keeps, its commitment resolved ([`seal_commitment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealView<'a> {
    pub round: u64,
    pub time: u32,
    pub commitment: &'a [u8],
    pub digests: u32,
}

impl<'a> EventView<'a> {
    /// The seal's fields, its left-out commitment put back into `buf`; `None` for a digest.
    pub fn seal<'b>(&self, buf: &'b mut [u8; 44]) -> Option<SealView<'b>>
    where
        'a: 'b,
    {
        match *self {
            EventView::DigestSubmitted { .. } => None,
            EventView::RoundSealed {
                round,
                time,
                ref root,
                ref mac,
                commitment,
                digests,
            } => Some(SealView {
                round,
                time,
                commitment: seal_commitment(commitment, time, root, mac, buf),
                digests,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec;
    use super::super::Event;
    use super::*;

    fn view(e: &Event) -> Option<(u8, Vec<u8>, u64, u32, u32)> {
        let bytes = codec::encode(e).unwrap();
        match codec::decode_borrowed::<EventView>(&bytes).ok()? {
            EventView::DigestSubmitted { digest, .. } => Some((0, digest.to_vec(), 0, 0, 0)),
            seal => {
                let mut buf = [0; 44];
                let s = seal.seal(&mut buf)?;
                Some((1, s.commitment.to_vec(), s.round, s.time, s.digests))
            }
        }
    }

    /// A view's variant, its two byte fields, three numbers and the commitment it carries.
    type Fields = (u8, Vec<u8>, Vec<u8>, u64, u32, u32, Option<Vec<u8>>);

    /// The fields of a view, comparable.
    fn fields(v: &EventView<'_>) -> Fields {
        match v {
            EventView::DigestSubmitted { digest, nonce } => {
                (0, digest.to_vec(), nonce.to_vec(), 0, 0, 0, None)
            }
            EventView::RoundSealed {
                round,
                time,
                root,
                mac,
                commitment,
                digests,
            } => (
                1,
                root.to_vec(),
                mac.to_vec(),
                *round,
                *time,
                *digests,
                commitment.map(<[u8]>::to_vec),
            ),
        }
    }

    #[test]
    fn the_hand_decoder_reads_what_serde_reads_and_nothing_serde_refuses() {
        let seal = |round, time, digests| Event::RoundSealed {
            round,
            time,
            root: [0x52; 32],
            mac: [0x3a; 8],
            commitment: [&time.to_be_bytes()[..], &[0x52; 32], &[0x3a; 8]].concat(),
            digests,
        };
        let events = [
            Event::DigestSubmitted {
                digest: vec![0xd1; 32],
                nonce: [7; 16],
            },
            Event::DigestSubmitted {
                digest: vec![2; 64],
                nonce: [0; 16],
            },
            Event::DigestSubmitted {
                digest: vec![3; 5],
                nonce: [0x18; 16],
            },
            seal(7, 1_700_000_000, 1),
            seal(0, 0, 0),
            seal(300, 70_000, 24),
            seal(u64::MAX, u32::MAX, u32::MAX),
        ];
        let mut accepted = 0;
        let mut agree = |bytes: &[u8]| {
            let serde = codec::decode_borrowed::<EventView>(bytes).ok();
            if let Some(fast) = compact(bytes) {
                let serde = serde.unwrap_or_else(|| panic!("serde refuses {bytes:02x?}"));
                assert_eq!(fields(&fast), fields(&serde), "{bytes:02x?}");
                accepted += 1;
            }
            assert_eq!(
                EventView::read(bytes).ok().map(|v| fields(&v)),
                codec::decode_borrowed::<EventView>(bytes)
                    .ok()
                    .map(|v| fields(&v)),
                "{bytes:02x?}"
            );
        };
        for e in &events {
            let bytes = codec::encode(e).unwrap();
            assert!(compact(&bytes).is_some(), "otsd's own encoding: {e:?}");
            agree(&bytes);
            for at in 0..=bytes.len() {
                agree(&bytes[..at]);
                for v in [
                    0x00, 0x01, 0x05, 0x17, 0x18, 0x1b, 0x20, 0x40, 0x48, 0x50, 0x58, 0xa6, 0xff,
                ] {
                    let mut m = bytes.clone();
                    m.insert(at, v);
                    agree(&m);
                    if at < bytes.len() {
                        let mut m = bytes.clone();
                        m[at] = v;
                        agree(&m);
                        m[at] = bytes[at] ^ 0x01;
                        agree(&m);
                    }
                }
            }
        }
        assert!(
            accepted > events.len(),
            "mutations that stay valid are read too"
        );
        // A map head longer than needed: serde's to read.
        let long_head = [
            &[0xa1, 0x01, 0xb8, 0x05, 0x00, 0x18, 0x07, 0x01, 0x00][..],
            &[0x02, 0x58, 0x20],
            &[1; 32],
            &[0x03, 0x48],
            &[2; 8],
            &[0x05, 0x01],
        ]
        .concat();
        assert!(compact(&long_head).is_none());
        assert_eq!(fields(&EventView::read(&long_head).unwrap()).3, 7);
    }

    #[test]
    fn the_view_reads_what_the_event_holds_and_refuses_other_events() {
        let digest = Event::DigestSubmitted {
            digest: vec![7; 32],
            nonce: [9; 16],
        };
        assert_eq!(view(&digest), Some((0, vec![7; 32], 0, 0, 0)));
        let long = Event::DigestSubmitted {
            digest: vec![1; 64],
            nonce: [0; 16],
        };
        assert_eq!(view(&long), Some((0, vec![1; 64], 0, 0, 0)));
        let sealed = Event::RoundSealed {
            round: 1 << 40,
            time: 1_700_000_000,
            root: [3; 32],
            mac: [4; 8],
            commitment: vec![5; 44],
            digests: 24,
        };
        assert_eq!(
            view(&sealed),
            Some((1, vec![5; 44], 1 << 40, 1_700_000_000, 24))
        );
        // A seal otsd writes leaves its commitment out (compact encoding); the view puts it back.
        let own = [&1_700_000_000u32.to_be_bytes()[..], &[3; 32], &[4; 8]].concat();
        let compact = Event::RoundSealed {
            round: 2,
            time: 1_700_000_000,
            root: [3; 32],
            mac: [4; 8],
            commitment: own.clone(),
            digests: 1,
        };
        let bytes = codec::encode(&compact).unwrap();
        assert!(
            bytes.len() < 80,
            "the commitment was left out: {} bytes",
            bytes.len()
        );
        assert_eq!(view(&compact), Some((1, own, 2, 1_700_000_000, 1)));
        let others = [
            Event::BlockSeen {
                height: 5,
                hash: [1; 32],
            },
            Event::CommitmentReadmitted {
                round: 3,
                commitment: vec![2; 44],
            },
            Event::ProofSuffixImported { bytes: vec![1, 2] },
        ];
        for e in &others {
            assert_eq!(view(e), None, "{e:?}");
        }
    }
}
