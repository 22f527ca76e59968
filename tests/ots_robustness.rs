//! Decoding untrusted bytes never panics, never recurses without bound, and whatever decodes
//! re-encodes to a canonical form that decodes to the same tree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]

use otsd::ots::file::HEADER_MAGIC;
use otsd::ots::timestamp::MAX_DEPTH;
use otsd::ots::{DecodeError, DetachedTimestampFile, Timestamp};
use proptest::prelude::*;

/// A python calendar answer, to mutate.
const ANSWER: &str = "f01029ba3b267055265e399621847f69d1cb08f1046b04a341f0087b01aa254603deb10083dfe30d2ef90c8e1716687474703a2f2f3132372e302e302e313a3134373838";

fn check_canonical(bytes: &[u8], msg: &[u8]) {
    if let Ok(t) = Timestamp::from_bytes(bytes, msg.to_vec()) {
        let again = t.to_bytes().expect("decoded trees are never empty");
        assert_eq!(Timestamp::from_bytes(&again, msg.to_vec()).as_ref(), Ok(&t));
    }
}

/// Bytes biased towards the format's markers so decoding gets past the first byte often.
fn proofish() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(0x00u8),
        Just(0xff),
        Just(0x08),
        Just(0xf0),
        Just(0xf1),
        Just(0xf2),
        Just(0xf3),
        Just(0x02),
        Just(0x03),
        Just(0x67),
        any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_canonical(&bytes, &msg);
    }

    #[test]
    fn format_shaped_bytes_never_panic(bytes in proofish(), msg in proptest::collection::vec(any::<u8>(), 1..40)) {
        check_canonical(&bytes, &msg);
    }

    #[test]
    fn mutated_answers_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), cut in any::<usize>()) {
        let mut bytes = hex::decode(ANSWER).expect("hex");
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        check_canonical(&bytes, b"digest");
    }

    #[test]
    fn random_files_never_panic(tail in proofish()) {
        let mut bytes = HEADER_MAGIC.to_vec();
        bytes.push(1);
        bytes.extend_from_slice(&tail);
        if let Ok(file) = DetachedTimestampFile::from_bytes(&bytes) {
            let again = file.to_bytes().expect("encodes");
            prop_assert_eq!(DetachedTimestampFile::from_bytes(&again), Ok(file));
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_stack_overflow() {
    for marker in [&[0x08u8][..], &[0xff, 0x08], &[0xf2]] {
        let bytes = marker.repeat(1_000_000);
        let err = Timestamp::from_bytes(&bytes, vec![1]).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::RecursionLimit {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn huge_length_prefix_is_refused_without_allocating() {
    let bytes = [0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let err = Timestamp::from_bytes(&bytes, vec![1]).unwrap_err();
    assert!(
        matches!(err, DecodeError::LengthOutOfRange { .. }),
        "{err:?}"
    );
}
