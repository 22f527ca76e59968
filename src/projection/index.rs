//! The commitment index: an open-addressing hash table on disk, commitment -> round.
//!
//! `index` is `slots` (a power of two) little-endian `u64` slots and nothing else; the checkpoint
//! names `slots`, how many entries it holds, and the table's `salt` (56 random bits drawn when the
//! table is built). A slot is
//!
//! ```text
//! bits  0..40  round + 1, or 0 for an empty slot
//! bits 40..56  fingerprint: bytes 12..14 of the commitment (0 when empty)
//! bits 56..64  CRC-8 (poly 0x07) of (bits 0..56 XOR salt), as 7 little-endian bytes
//! ```
//!
//! Salting the check makes every slot, empty ones included, belong to one table: a table of
//! zeros, another calendar's table or an older build of this one fails the check at its first
//! slot read, like a flipped bit does.
//!
//! A commitment's home slot is the low bits of bytes 4..12 (inside its Merkle root, a SHA-256
//! output the calendar computed, so keys spread evenly); collisions probe linearly. A hit is only
//! trusted once the round's entry in `rounds` (itself CRC-checked) holds the same commitment, so
//! the index never answers alone. A slot whose CRC-8 does not match is damage and an error, as is
//! a non-empty slot where zero was expected: a flipped bit anywhere is caught when read.
//!
//! Slots written after the checkpoint (an interrupted flush) can point at rounds the checkpoint
//! does not cover: lookups skip them, and an insert of round `r` reuses any slot pointing at a
//! round `>= r`, since rounds are inserted in order and such a slot can only be such a leftover.
//! The table is rebuilt twice as large from `rounds` when it is [`MAX_LOAD_NUM`]/[`MAX_LOAD_DEN`]
//! full, so lookups stay at one or two cache lines.
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::Commitment;

/// Grow the table when more than this fraction of it is used.
pub const MAX_LOAD_NUM: u64 = 3;
pub const MAX_LOAD_DEN: u64 = 4;
/// The smallest table (8 KiB).
pub const MIN_SLOTS: u64 = 1024;
/// Rounds a slot can name (2^40 - 1).
pub const MAX_ROUNDS: u64 = (1 << 40) - 1;

const ROUND_MASK: u64 = (1 << 40) - 1;

/// The table size for `entries` entries: a power of two at most half full.
pub fn slots_for(entries: u64) -> u64 {
    entries.saturating_mul(2).next_power_of_two().max(MIN_SLOTS)
}

/// Whether `entries` entries overfill a table of `slots`.
pub fn overfull(entries: u64, slots: u64) -> bool {
    entries.saturating_mul(MAX_LOAD_DEN) > slots.saturating_mul(MAX_LOAD_NUM)
}

/// The home slot of `c` in a table of `slots`.
pub fn home(c: &Commitment, slots: u64) -> u64 {
    key_bits(c) & (slots - 1)
}

/// The 64 bits of `c` its home slot is taken from (the low bits, in a table of any size).
pub fn key_bits(c: &Commitment) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[4..12]);
    u64::from_le_bytes(b)
}

pub fn fingerprint(c: &Commitment) -> u64 {
    u64::from(u16::from_le_bytes([c[12], c[13]]))
}

/// A salt for a new table: 56 random bits whose empty slot is not all zeros.
pub fn new_salt() -> u64 {
    loop {
        let salt = rand::random::<u64>() & ((1 << 56) - 1);
        if crc8(salt) != 0 {
            return salt;
        }
    }
}

/// The empty slot of a table with `salt`.
pub fn empty_slot(salt: u64) -> u64 {
    crc8(salt) << 56
}

fn crc8(data: u64) -> u64 {
    u64::from(crc8_update(0, &data.to_le_bytes()[..7]))
}

/// CRC-8 (poly 0x07, no reflection, initial value `crc`) continued over `bytes`: the check of
/// both slot tables. The register is linear in what is shifted through it, so up to eight bytes
/// are taken in one step, each through the table for its distance from the step's end
/// ([`CRC8_TABLES`]): the look-ups do not wait on each other as one per byte would.
pub(crate) fn crc8_update(mut crc: u8, bytes: &[u8]) -> u8 {
    for step in bytes.chunks(8) {
        let last = step.len() - 1;
        let mut next = CRC8_TABLES[last][usize::from(crc ^ step[0])];
        for (i, &b) in step.iter().enumerate().skip(1) {
            next ^= CRC8_TABLES[last - i][usize::from(b)];
        }
        crc = next;
    }
    crc
}

/// `CRC8_TABLES[k][x]`: the CRC-8 register, from zero, after the byte `x` and then `k` zero
/// bytes are shifted through it bit by bit.
const CRC8_TABLES: [[u8; 256]; 8] = crc8_tables();

const fn crc8_tables() -> [[u8; 256]; 8] {
    let mut tables = [[0u8; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut x = 0;
        while x < 256 {
            // One more zero byte: the register goes through the one-byte table once more.
            tables[k][x] = tables[0][tables[k - 1][x] as usize];
            x += 1;
        }
        k += 1;
    }
    tables
}

/// The slot for `round` of commitment `c`.
pub fn encode_slot(c: &Commitment, round: u64, salt: u64) -> u64 {
    let data = (round + 1) | (fingerprint(c) << 40);
    data | (crc8(data ^ salt) << 56)
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    Used { round: u64, fingerprint: u64 },
}

/// Decodes a slot; `None` when it is damaged or of another table.
pub fn decode_slot(s: u64, salt: u64) -> Option<Slot> {
    let data = s & ((1 << 56) - 1);
    if crc8(data ^ salt) != s >> 56 {
        return None;
    }
    if data == 0 {
        return Some(Slot::Empty);
    }
    if data & ROUND_MASK == 0 {
        return None;
    }
    Some(Slot::Used {
        round: (data & ROUND_MASK) - 1,
        fingerprint: data >> 40,
    })
}

/// Why a look-up or insert failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("commitment index slot {slot} is damaged")]
    Damaged { slot: u64 },
    #[error("commitment index is full")]
    Full,
    #[error("round table: {0}")]
    Round(String),
    #[error("commitment index: {0}")]
    Io(#[from] std::io::Error),
}

/// Slots, in a file read with `pread` or in a writable map.
pub trait Slots {
    fn slots(&self) -> u64;
    fn salt(&self) -> u64;
    fn get(&self, i: u64) -> std::io::Result<u64>;
    fn set(&mut self, i: u64, v: u64) -> std::io::Result<()>;
}

/// Slots read and written one at a time through the file (`pread`/`pwrite`): no memory mapped,
/// for readers and small inserts.
pub struct FileSlots<'a> {
    pub file: &'a File,
    pub slots: u64,
    pub salt: u64,
}

impl Slots for FileSlots<'_> {
    fn slots(&self) -> u64 {
        self.slots
    }

    fn salt(&self) -> u64 {
        self.salt
    }

    fn get(&self, i: u64) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, i * 8)?;
        Ok(u64::from_le_bytes(b))
    }

    fn set(&mut self, i: u64, v: u64) -> std::io::Result<()> {
        self.file.write_all_at(&v.to_le_bytes(), i * 8)
    }
}

/// Slots in a writable map (see [`crate::log::mmap::MappedMut`]), for bulk builds.
pub struct MapSlots<'a>(pub &'a mut [u8], pub u64);

impl MapSlots<'_> {
    /// Fills every slot with the empty slot (a new table).
    pub fn clear(&mut self) {
        self.clear_range(0..self.slots());
    }

    /// Fills the slots `range` with the empty slot (a new table, cleared in steps).
    pub fn clear_range(&mut self, range: std::ops::Range<u64>) {
        let empty = empty_slot(self.1).to_le_bytes();
        for chunk in self.0[range.start as usize * 8..range.end as usize * 8].chunks_exact_mut(8) {
            chunk.copy_from_slice(&empty);
        }
    }
}

impl Slots for MapSlots<'_> {
    fn slots(&self) -> u64 {
        (self.0.len() / 8) as u64
    }

    fn salt(&self) -> u64 {
        self.1
    }

    fn get(&self, i: u64) -> std::io::Result<u64> {
        let at = i as usize * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        Ok(u64::from_le_bytes(b))
    }

    fn set(&mut self, i: u64, v: u64) -> std::io::Result<()> {
        let at = i as usize * 8;
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
}

/// Finds the round of `c` among rounds `< valid`; `commitment_of(r)` reads round `r`'s commitment.
pub fn find(
    slots: &impl Slots,
    c: &Commitment,
    valid: u64,
    mut commitment_of: impl FnMut(u64) -> Result<Commitment, IndexError>,
) -> Result<Option<u64>, IndexError> {
    let n = slots.slots();
    let fp = fingerprint(c);
    let mut i = home(c, n);
    for _ in 0..n {
        let raw = slots.get(i)?;
        match decode_slot(raw, slots.salt()).ok_or(IndexError::Damaged { slot: i })? {
            Slot::Empty => return Ok(None),
            Slot::Used { round, fingerprint } => {
                if fingerprint == fp && round < valid && commitment_of(round)? == *c {
                    return Ok(Some(round));
                }
            }
        }
        i = (i + 1) & (n - 1);
    }
    Ok(None)
}

/// Inserts `c` at `round`, all rounds before `round` being in the table already: an earlier round
/// with the same commitment keeps it (the fold's rule), and a slot naming a round `>= round` is a
/// leftover of an interrupted flush and is reused. Returns whether an entry was added.
pub fn insert(
    slots: &mut impl Slots,
    c: &Commitment,
    round: u64,
    mut commitment_of: impl FnMut(u64) -> Result<Commitment, IndexError>,
) -> Result<bool, IndexError> {
    let n = slots.slots();
    let fp = fingerprint(c);
    let mut i = home(c, n);
    for _ in 0..n {
        let raw = slots.get(i)?;
        let salt = slots.salt();
        match decode_slot(raw, salt).ok_or(IndexError::Damaged { slot: i })? {
            Slot::Empty => {
                slots.set(i, encode_slot(c, round, salt))?;
                return Ok(true);
            }
            Slot::Used { round: r, .. } if r >= round => {
                slots.set(i, encode_slot(c, round, salt))?;
                return Ok(true);
            }
            Slot::Used {
                round: r,
                fingerprint,
            } => {
                if fingerprint == fp && commitment_of(r)? == *c {
                    return Ok(false);
                }
            }
        }
        i = (i + 1) & (n - 1);
    }
    Err(IndexError::Full)
}

/// Inserts round `round` of a commitment known by its [`key_bits`] and [`fingerprint`] into a
/// table being built from nothing (no slot is a leftover), where a commitment's rounds come in
/// order but commitments need not: an entry already there for the same commitment keeps it.
/// `same(r)` says whether round `r` holds the commitment of `round`; it is asked only when the
/// 80 bits of key and fingerprint match. Returns whether an entry was added.
pub fn insert_new(
    slots: &mut impl Slots,
    key: u64,
    fp: u64,
    round: u64,
    mut same: impl FnMut(u64) -> Result<bool, IndexError>,
) -> Result<bool, IndexError> {
    let n = slots.slots();
    let salt = slots.salt();
    let mut i = key & (n - 1);
    for _ in 0..n {
        let raw = slots.get(i)?;
        match decode_slot(raw, salt).ok_or(IndexError::Damaged { slot: i })? {
            Slot::Empty => {
                let data = (round + 1) | (fp << 40);
                slots.set(i, data | (crc8(data ^ salt) << 56))?;
                return Ok(true);
            }
            Slot::Used {
                round: r,
                fingerprint,
            } => {
                if fingerprint == fp && same(r)? {
                    return Ok(false);
                }
            }
        }
        i = (i + 1) & (n - 1);
    }
    Err(IndexError::Full)
}

/// Checks every slot of a table; returns the number in use, or the first damaged slot.
pub fn scan(bytes: &[u8], salt: u64) -> Result<u64, IndexError> {
    let mut used = 0;
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        match decode_slot(u64::from_le_bytes(b), salt) {
            None => return Err(IndexError::Damaged { slot: i as u64 }),
            Some(Slot::Used { .. }) => used += 1,
            Some(Slot::Empty) => {}
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x00ab_cdef_0123_4567;

    fn c(i: u64) -> Commitment {
        let mut c = [0u8; 44];
        c[4..12].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
        c[12..20].copy_from_slice(&i.to_le_bytes());
        c
    }

    #[test]
    fn inserts_find_repeats_keep_the_first_round_and_damage_is_caught() {
        let mut buf = vec![0u8; 8 * 64];
        MapSlots(&mut buf, SALT).clear();
        let all: Vec<Commitment> = (0..40).map(c).collect();
        let mut rounds: Vec<Commitment> = Vec::new();
        for (r, k) in all.iter().enumerate() {
            rounds.push(*k);
            let added = insert(&mut MapSlots(&mut buf, SALT), k, r as u64, |r| {
                Ok(rounds[r as usize])
            })
            .unwrap();
            assert!(added);
        }
        // A repeat keeps its first round.
        rounds.push(all[3]);
        let added = insert(&mut MapSlots(&mut buf, SALT), &all[3], 40, |r| {
            Ok(rounds[r as usize])
        });
        assert!(!added.unwrap());
        for (r, k) in all.iter().enumerate() {
            let got = find(&MapSlots(&mut buf, SALT), k, 41, |r| Ok(rounds[r as usize])).unwrap();
            assert_eq!(got, Some(r as u64));
        }
        assert_eq!(
            find(&MapSlots(&mut buf, SALT), &c(999), 41, |r| Ok(
                rounds[r as usize]
            ))
            .unwrap(),
            None
        );
        // Rounds past `valid` are not answered.
        assert_eq!(
            find(&MapSlots(&mut buf, SALT), &all[39], 39, |r| Ok(
                rounds[r as usize]
            ))
            .unwrap(),
            None
        );
        assert_eq!(scan(&buf, SALT).unwrap(), 40);
        for bit in 0..buf.len() * 8 {
            let mut d = buf.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(scan(&d, SALT), Err(IndexError::Damaged { .. })),
                "bit {bit}"
            );
        }
        // Another table's slots, or zeros, are not this table's.
        assert!(scan(&buf, SALT ^ 1).is_err());
        assert!(scan(&[0; 64], SALT).is_err());
    }

    /// The table-driven CRC-8 equals the bitwise definition on every input tried.
    #[test]
    fn crc8_table_matches_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u8 {
            let mut crc: u8 = 0;
            for byte in bytes {
                crc ^= byte;
                for _ in 0..8 {
                    crc = if crc & 0x80 != 0 {
                        (crc << 1) ^ 0x07
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let mut x = 0x0123_4567_89ab_cdefu64;
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            assert_eq!(crc8_update(0, &bytes), bitwise(&bytes), "{bytes:?}");
            // Continued from any register: as if the bytes giving it came first.
            for split in [0, len / 3, len / 2, len] {
                let (a, b) = bytes.split_at(split);
                assert_eq!(
                    crc8_update(crc8_update(0, a), b),
                    bitwise(&bytes),
                    "{bytes:?}"
                );
            }
        }
        assert_eq!(crc8_update(0, b"123456789"), 0xf4, "the CRC-8 check value");
    }

    #[test]
    fn leftovers_of_an_interrupted_flush_are_reused() {
        let mut buf = vec![0u8; 8 * 16];
        MapSlots(&mut buf, SALT).clear();
        let mut rounds = [c(1), c(2)];
        for r in 0..2u64 {
            insert(&mut MapSlots(&mut buf, SALT), &rounds[r as usize], r, |r| {
                Ok(rounds[r as usize])
            })
            .unwrap();
        }
        // The checkpoint covered round 0 only; round 1 is written again, with another commitment.
        rounds[1] = c(3);
        insert(&mut MapSlots(&mut buf, SALT), &c(3), 1, |r| {
            Ok(rounds[r as usize])
        })
        .unwrap();
        assert_eq!(
            find(&MapSlots(&mut buf, SALT), &c(3), 2, |r| Ok(
                rounds[r as usize]
            ))
            .unwrap(),
            Some(1)
        );
        assert_eq!(
            find(&MapSlots(&mut buf, SALT), &c(2), 2, |r| Ok(
                rounds[r as usize]
            ))
            .unwrap(),
            None
        );
    }
}
