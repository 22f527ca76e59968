//! The primitive encodings: LEB128 `varuint`, length-prefixed `varbytes` and fixed bytes.
//!
//! python-opentimestamps reads varuints of any length; we accept any encoding whose value fits
//! in a `u64` (including non-canonical ones with redundant `0x80` continuation bytes, which python
//! accepts too) and reject larger values, which no valid structure needs. Every variable-length read
//! takes explicit bounds so a hostile length prefix can never make us allocate or read past the
//! input.

use super::error::DecodeError;

/// A cursor over an input buffer. Reads never panic; they fail with the offset of the problem.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Number of bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_bytes(1)?[0])
    }

    /// Reads exactly `len` bytes.
    pub fn read_bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                wanted: len,
                available: self.remaining(),
            });
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads a fixed-size array.
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.read_bytes(N)?);
        Ok(out)
    }

    /// Reads an unsigned LEB128 integer.
    pub fn read_varuint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift: u32 = 0;
        loop {
            let byte = self.read_u8()?;
            let bits = u64::from(byte & 0x7f);
            if bits != 0 && (shift >= 64 || bits.leading_zeros() < shift) {
                return Err(DecodeError::VarUintOverflow { offset: start });
            }
            if shift < 64 {
                value |= bits << shift;
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
    }

    /// Reads a varuint length prefix in `min..=max`, then that many bytes.
    pub fn read_varbytes(&mut self, min: usize, max: usize) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let len = self.read_varuint()?;
        match usize::try_from(len) {
            Ok(n) if (min..=max).contains(&n) => self.read_bytes(n),
            _ => Err(DecodeError::LengthOutOfRange {
                offset,
                len,
                min,
                max,
            }),
        }
    }

    /// Fails unless the whole input has been consumed.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}

/// Appends `value` as canonical unsigned LEB128.
pub fn write_varuint(out: &mut Vec<u8>, mut value: u64) {
    while value > 0x7f {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Number of bytes [`write_varuint`] writes for `value`.
pub fn varuint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Appends `bytes` prefixed with its length as a varuint.
pub fn write_varbytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varuint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(value: u64) {
        let mut out = Vec::new();
        write_varuint(&mut out, value);
        assert_eq!(out.len(), varuint_len(value));
        let mut r = Reader::new(&out);
        assert_eq!(r.read_varuint(), Ok(value));
        assert_eq!(r.expect_end(), Ok(()));
    }

    #[test]
    fn varuint_roundtrips_at_boundaries() {
        for v in [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            roundtrip(v);
        }
    }

    #[test]
    fn varuint_matches_python_encoding() {
        let mut out = Vec::new();
        write_varuint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn non_canonical_varuint_is_accepted_like_python() {
        let bytes = [
            0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ];
        assert_eq!(Reader::new(&bytes).read_varuint(), Ok(1));
    }

    #[test]
    fn varuint_overflow_is_an_error() {
        let mut bytes = vec![0xff; 9];
        bytes.push(0x02);
        let err = Reader::new(&bytes).read_varuint();
        assert_eq!(err, Err(DecodeError::VarUintOverflow { offset: 0 }));
    }

    #[test]
    fn varbytes_enforces_bounds_before_reading() {
        let mut out = Vec::new();
        write_varuint(&mut out, 1 << 40);
        let err = Reader::new(&out).read_varbytes(0, 4096).unwrap_err();
        assert!(matches!(err, DecodeError::LengthOutOfRange { len, .. } if len == 1 << 40));
        assert!(Reader::new(&[0]).read_varbytes(1, 10).is_err());
        assert_eq!(
            Reader::new(&[2, 7, 8]).read_varbytes(1, 10),
            Ok(&[7u8, 8][..])
        );
    }

    #[test]
    fn truncation_reports_offset() {
        let err = Reader::new(&[3, 1]).read_varbytes(0, 10).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                offset: 1,
                wanted: 3,
                available: 1
            }
        );
    }
}
