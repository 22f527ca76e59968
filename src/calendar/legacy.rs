//! Legacy commitments of the Python calendar.
//!
//! Before September 2016 the Python otsd journaled `time || root` (36 bytes); its one-off conversion
//! tool rewrote those records as `time || root || 00×8`, and its journal reader strips an all-zero
//! MAC again, so such a commitment is 36 bytes everywhere a client sees it (its pending
//! attestation, `GET /timestamp/<72 hex>`, the leaf `sha256(commitment)` of the stamping tip).
//! otsd keeps every commitment as 44 bytes in its indexes (legacy ones padded with the zero MAC)
//! and applies the same rule wherever the Python server would: a genuine MAC of eight zero bytes
//! (probability 2⁻⁶⁴) is read as legacy too, as Python does.
use super::commitment::COMMITMENT_LEN;

/// Length of a legacy commitment: time and root, no MAC.
pub const LEGACY_LEN: usize = 36;

/// Whether a stored 44-byte commitment is a padded legacy one.
pub fn is_legacy(commitment: &[u8]) -> bool {
    commitment.len() == COMMITMENT_LEN && commitment[LEGACY_LEN..].iter().all(|&b| b == 0)
}

/// The message clients hold for a stored commitment: the first 36 bytes of a padded legacy one,
/// the commitment itself otherwise.
pub fn client_message(commitment: &[u8]) -> &[u8] {
    if is_legacy(commitment) {
        &commitment[..LEGACY_LEN]
    } else {
        commitment
    }
}

/// The stored (44-byte) form of a message a client may ask about: a 36-byte message padded with
/// the zero MAC; `None` for any other length, and for a 44-byte message with a zero MAC, which the
/// Python server never finds (it knows that commitment only as 36 bytes).
pub fn stored_form(message: &[u8]) -> Option<[u8; COMMITMENT_LEN]> {
    let mut out = [0u8; COMMITMENT_LEN];
    match message.len() {
        LEGACY_LEN => out[..LEGACY_LEN].copy_from_slice(message),
        COMMITMENT_LEN if !is_legacy(message) => out.copy_from_slice(message),
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_commitments_are_36_bytes_outside_and_padded_inside() {
        let mut c = [7u8; COMMITMENT_LEN];
        assert!(!is_legacy(&c));
        assert_eq!(client_message(&c), &c[..]);
        assert_eq!(stored_form(&c), Some(c));
        c[LEGACY_LEN..].fill(0);
        assert!(is_legacy(&c));
        assert_eq!(client_message(&c), &c[..LEGACY_LEN]);
        assert_eq!(stored_form(&c[..LEGACY_LEN]), Some(c));
        assert_eq!(stored_form(&c), None, "Python never finds the padded form");
        assert_eq!(stored_form(&c[..20]), None);
    }
}
