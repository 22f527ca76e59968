//! The digest index: an open-addressing hash table on disk, submitted digest -> round, so that
//! `GET /status/<digest>` finds the round a client's digest went into without reading the log.
//!
//! `digests` is `slots` (a power of two) slots of [`SLOT_LEN`] bytes and nothing else; the
//! checkpoint names `slots`, how many entries it holds and the table's `salt` (56 random bits
//! drawn when the first table is built, kept when it grows). A digest's key is
//! `k = SHA-256(salt as 8 LE bytes || SHA-256(digest))`, and a slot is
//!
//! ```text
//! offset size
//!      0    8  k[0..8], u64 LE: the home slot is its low bits (0 in an empty slot)
//!      8    5  round + 1, u40 LE, or 0 for an empty slot
//!     13    2  k[8..10]: 16 more bits of the key (0 in an empty slot)
//!     15    1  CRC-8 (poly 0x07) of the 7 salt bytes then bytes 0..15
//! ```
//!
//! The key is salted because clients choose digests: without the salt, which no client sees, a
//! client could grind digests that share a home slot and make long probe chains. The slot keeps
//! 80 bits of the key, so the table can grow by rehashing its own slots (the digests themselves
//! are only in the log), and an unknown digest matches a slot by chance with probability 2^-80
//! per slot probed: unlike the commitment index ([`super::index`]), a hit is not checked against
//! another file (the round table holds no digests), and 2^-80 is the stated bound.
//!
//! A digest submitted more than once keeps its first round (as a repeated commitment does).
//! Slots written after the checkpoint (an interrupted flush) can name rounds the checkpoint does
//! not cover: look-ups skip them, and an insert of round `r` reuses a slot naming a round `> r`,
//! since rounds are inserted in order. A leftover naming round `r` itself is left in place: the
//! checkpointer only folds sealed (fsync'd) segments, so the log's round `r` holds that digest
//! when the next flush writes it again. A slot whose CRC-8 does not match is damage and an error.
//! The table is rebuilt twice as large at [`MAX_LOAD_NUM`]/[`MAX_LOAD_DEN`] full.
//!
//! Cost: 16 bytes a slot, at 3/8 to 3/4 load: 21 to 43 bytes per distinct digest on disk, one or
//! two slot reads (one page) per look-up.

use super::index::{crc8_update, MAX_LOAD_DEN, MAX_LOAD_NUM};

/// Bytes per slot.
pub const SLOT_LEN: usize = 16;
/// The smallest table (16 KiB).
pub const MIN_SLOTS: u64 = 1024;
/// Rounds a slot can name (2^40 - 1).
pub const MAX_ROUNDS: u64 = (1 << 40) - 1;

/// SHA-256 of a submitted digest: what the projection keeps per digest until a checkpoint.
pub type DigestHash = [u8; 32];

/// The hash the projection keeps for `digest`.
pub fn digest_hash(digest: &[u8]) -> DigestHash {
    crate::sha::short(digest)
}

/// The salted key of a digest: 80 bits, as the slot stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub home: u64,
    pub check: u16,
}

impl Key {
    pub fn new(h: &DigestHash, salt: u64) -> Key {
        let k = crate::sha::concat(&salt.to_le_bytes(), h);
        let mut home = [0u8; 8];
        home.copy_from_slice(&k[..8]);
        Key {
            home: u64::from_le_bytes(home),
            check: u16::from_le_bytes([k[8], k[9]]),
        }
    }
}

/// The table size for `entries` entries: a power of two at most half full.
pub fn slots_for(entries: u64) -> u64 {
    entries.saturating_mul(2).next_power_of_two().max(MIN_SLOTS)
}

/// Whether `entries` entries overfill a table of `slots`.
pub fn overfull(entries: u64, slots: u64) -> bool {
    entries.saturating_mul(MAX_LOAD_DEN) > slots.saturating_mul(MAX_LOAD_NUM)
}

fn crc8(salt: u64, data: &[u8]) -> u8 {
    crc8_update(crc8_update(0, &salt.to_le_bytes()[..7]), data)
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    Used { key: Key, round: u64 },
}

/// The bytes of a slot.
pub fn encode_slot(slot: Slot, salt: u64) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    if let Slot::Used { key, round } = slot {
        b[..8].copy_from_slice(&key.home.to_le_bytes());
        b[8..13].copy_from_slice(&(round + 1).to_le_bytes()[..5]);
        b[13..15].copy_from_slice(&key.check.to_le_bytes());
    }
    b[15] = crc8(salt, &b[..15]);
    b
}

/// Decodes a slot; `None` when it is damaged or of another table.
pub fn decode_slot(b: &[u8; SLOT_LEN], salt: u64) -> Option<Slot> {
    if crc8(salt, &b[..15]) != b[15] {
        return None;
    }
    let mut r = [0u8; 8];
    r[..5].copy_from_slice(&b[8..13]);
    let round1 = u64::from_le_bytes(r);
    if round1 == 0 {
        return b[..15].iter().all(|&x| x == 0).then_some(Slot::Empty);
    }
    let mut home = [0u8; 8];
    home.copy_from_slice(&b[..8]);
    Some(Slot::Used {
        key: Key {
            home: u64::from_le_bytes(home),
            check: u16::from_le_bytes([b[13], b[14]]),
        },
        round: round1 - 1,
    })
}

/// Why a look-up or insert failed.
#[derive(Debug, thiserror::Error)]
pub enum DigestIndexError {
    #[error("digest index slot {slot} is damaged")]
    Damaged { slot: u64 },
    #[error("digest index is full")]
    Full,
    #[error("digest index: round {0} is past what a slot can name")]
    TooManyRounds(u64),
    #[error("digest index: {0}")]
    Io(#[from] std::io::Error),
}

/// Slots, through a file (`pread`/`pwrite`) or in a buffer.
pub trait Slots {
    fn slots(&self) -> u64;
    fn get(&self, i: u64) -> std::io::Result<[u8; SLOT_LEN]>;
    fn set(&mut self, i: u64, v: [u8; SLOT_LEN]) -> std::io::Result<()>;
}

/// Slots read and written one at a time through the file: nothing mapped.
pub struct FileSlots<'a> {
    pub file: &'a std::fs::File,
    pub slots: u64,
}

impl Slots for FileSlots<'_> {
    fn slots(&self) -> u64 {
        self.slots
    }

    fn get(&self, i: u64) -> std::io::Result<[u8; SLOT_LEN]> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; SLOT_LEN];
        self.file.read_exact_at(&mut b, i * SLOT_LEN as u64)?;
        Ok(b)
    }

    fn set(&mut self, i: u64, v: [u8; SLOT_LEN]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&v, i * SLOT_LEN as u64)
    }
}

/// Slots in a byte buffer (a writable map, for bulk builds and rehashing).
pub struct BufSlots<'a>(pub &'a mut [u8]);

impl BufSlots<'_> {
    /// Fills every slot with the empty slot (a new table).
    pub fn clear(&mut self, salt: u64) {
        self.clear_range(salt, 0..self.slots());
    }

    /// Fills the slots `range` with the empty slot (a new table, cleared in steps).
    pub fn clear_range(&mut self, salt: u64, range: std::ops::Range<u64>) {
        let empty = encode_slot(Slot::Empty, salt);
        let bytes = &mut self.0[range.start as usize * SLOT_LEN..range.end as usize * SLOT_LEN];
        for chunk in bytes.chunks_exact_mut(SLOT_LEN) {
            chunk.copy_from_slice(&empty);
        }
    }
}

impl Slots for BufSlots<'_> {
    fn slots(&self) -> u64 {
        (self.0.len() / SLOT_LEN) as u64
    }

    fn get(&self, i: u64) -> std::io::Result<[u8; SLOT_LEN]> {
        let at = i as usize * SLOT_LEN;
        let mut b = [0u8; SLOT_LEN];
        b.copy_from_slice(&self.0[at..at + SLOT_LEN]);
        Ok(b)
    }

    fn set(&mut self, i: u64, v: [u8; SLOT_LEN]) -> std::io::Result<()> {
        let at = i as usize * SLOT_LEN;
        self.0[at..at + SLOT_LEN].copy_from_slice(&v);
        Ok(())
    }
}

fn read(slots: &impl Slots, i: u64, salt: u64) -> Result<Slot, DigestIndexError> {
    decode_slot(&slots.get(i)?, salt).ok_or(DigestIndexError::Damaged { slot: i })
}

/// The first round holding a digest with `key`, among rounds `< valid`.
pub fn find(
    slots: &impl Slots,
    key: Key,
    salt: u64,
    valid: u64,
) -> Result<Option<u64>, DigestIndexError> {
    let n = slots.slots();
    let mut i = key.home & (n - 1);
    for _ in 0..n {
        match read(slots, i, salt)? {
            Slot::Empty => return Ok(None),
            Slot::Used { key: k, round } if k == key && round < valid => return Ok(Some(round)),
            Slot::Used { .. } => {}
        }
        i = (i + 1) & (n - 1);
    }
    Ok(None)
}

/// Inserts `key` at `round`, every round before `round` being in the table already: an earlier
/// round keeps a repeated digest, and a slot naming a later round is a leftover of an interrupted
/// flush and is reused. Returns whether an entry was added.
pub fn insert(
    slots: &mut impl Slots,
    key: Key,
    round: u64,
    salt: u64,
) -> Result<bool, DigestIndexError> {
    if round >= MAX_ROUNDS {
        return Err(DigestIndexError::TooManyRounds(round));
    }
    let n = slots.slots();
    let mut i = key.home & (n - 1);
    // The first leftover on the probe chain is reused, but only once the chain (up to its empty
    // slot) holds no earlier round of the same digest.
    let mut reuse = None;
    for _ in 0..n {
        match read(slots, i, salt)? {
            Slot::Used { key: k, round: r } if k == key && r <= round => return Ok(false),
            Slot::Used { round: r, .. } if r <= round => {}
            Slot::Used { .. } => {
                reuse.get_or_insert(i);
            }
            Slot::Empty => {
                slots.set(
                    reuse.unwrap_or(i),
                    encode_slot(Slot::Used { key, round }, salt),
                )?;
                return Ok(true);
            }
        }
        i = (i + 1) & (n - 1);
    }
    match reuse {
        Some(at) => {
            slots.set(at, encode_slot(Slot::Used { key, round }, salt))?;
            Ok(true)
        }
        None => Err(DigestIndexError::Full),
    }
}

/// Every entry of `from` naming a round `< valid`, inserted into the empty table `to` (growing a
/// table: the keys are in the slots, no digest is needed). Returns the entries copied.
pub fn rehash(
    from: &impl Slots,
    to: &mut impl Slots,
    salt: u64,
    valid: u64,
) -> Result<u64, DigestIndexError> {
    rehash_range(from, to, salt, valid, 0..from.slots())
}

/// [`rehash`] of the slots `range` of `from` only, for a table grown in steps. Slot `i` of a
/// table of `n` slots holds a key whose home is at most `i` (less when displaced), so in a table
/// of `m` slots (a multiple of `n`) it lands at or after its home modulo `n` plus a multiple of
/// `n`: sweeping `from` in order sweeps each `n`-slot part of `to` in order.
pub fn rehash_range(
    from: &impl Slots,
    to: &mut impl Slots,
    salt: u64,
    valid: u64,
    range: std::ops::Range<u64>,
) -> Result<u64, DigestIndexError> {
    let mut added = 0;
    for i in range {
        if let Slot::Used { key, round } = read(from, i, salt)? {
            if round < valid {
                added += u64::from(insert_unordered(to, key, round, salt)?);
            }
        }
    }
    Ok(added)
}

/// Inserts `key` at `round` where entries do not come in round order (a table being rebuilt,
/// or a batch sorted by home slot): the smaller round of a repeated key wins, and a slot in use
/// is never reused. A leftover of an interrupted flush stays: it names a digest of a sealed
/// round as the log has it, so it is an entry like any other, and look-ups skip it until the
/// checkpoint covers its round. Returns whether an entry was added.
pub fn insert_unordered(
    slots: &mut impl Slots,
    key: Key,
    round: u64,
    salt: u64,
) -> Result<bool, DigestIndexError> {
    if round >= MAX_ROUNDS {
        return Err(DigestIndexError::TooManyRounds(round));
    }
    let n = slots.slots();
    let mut i = key.home & (n - 1);
    for _ in 0..n {
        match read(slots, i, salt)? {
            Slot::Empty => {
                slots.set(i, encode_slot(Slot::Used { key, round }, salt))?;
                return Ok(true);
            }
            Slot::Used { key: k, round: r } if k == key => {
                if round < r {
                    slots.set(i, encode_slot(Slot::Used { key, round }, salt))?;
                }
                return Ok(false);
            }
            Slot::Used { .. } => {}
        }
        i = (i + 1) & (n - 1);
    }
    Err(DigestIndexError::Full)
}

/// Checks every slot of a table; returns the number in use, or the first damaged slot.
pub fn scan(bytes: &[u8], salt: u64) -> Result<u64, DigestIndexError> {
    let mut used = 0;
    for (i, chunk) in bytes.chunks_exact(SLOT_LEN).enumerate() {
        let mut b = [0u8; SLOT_LEN];
        b.copy_from_slice(chunk);
        match decode_slot(&b, salt) {
            None => return Err(DigestIndexError::Damaged { slot: i as u64 }),
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

    fn key(i: u64) -> Key {
        Key::new(&digest_hash(&i.to_le_bytes()), SALT)
    }

    fn table(slots: usize) -> Vec<u8> {
        let mut buf = vec![0u8; SLOT_LEN * slots];
        BufSlots(&mut buf).clear(SALT);
        buf
    }

    #[test]
    fn inserts_are_found_repeats_keep_the_first_round_and_any_flipped_bit_is_caught() {
        let mut buf = table(64);
        // Three digests per round, the last one repeating an earlier round's digest.
        for r in 0..12u64 {
            for d in 0..3 {
                let added = insert(&mut BufSlots(&mut buf), key(r * 3 + d), r, SALT).unwrap();
                assert!(added);
            }
        }
        assert!(!insert(&mut BufSlots(&mut buf), key(4), 12, SALT).unwrap());
        for i in 0..36u64 {
            let got = find(&BufSlots(&mut buf), key(i), SALT, 13).unwrap();
            assert_eq!(got, Some(i / 3), "digest {i}");
        }
        assert_eq!(find(&BufSlots(&mut buf), key(999), SALT, 13).unwrap(), None);
        // Rounds past `valid` are not answered.
        assert_eq!(find(&BufSlots(&mut buf), key(35), SALT, 11).unwrap(), None);
        // Another salt gives other keys.
        let other = Key::new(&digest_hash(&5u64.to_le_bytes()), SALT ^ 1);
        assert_eq!(find(&BufSlots(&mut buf), other, SALT, 13).unwrap(), None);
        assert_eq!(scan(&buf, SALT).unwrap(), 36);
        for bit in 0..buf.len() * 8 {
            let mut d = buf.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(scan(&d, SALT), Err(DigestIndexError::Damaged { .. })),
                "bit {bit}"
            );
        }
        assert!(scan(&buf, SALT ^ 1).is_err(), "another table's slots");
        assert!(scan(&[0; 64], SALT).is_err(), "zeros are no table");
    }

    #[test]
    fn a_grown_table_answers_the_same_and_drops_leftovers() {
        let mut small = table(16);
        for i in 0..12u64 {
            insert(&mut BufSlots(&mut small), key(i), i, SALT).unwrap();
        }
        assert!(overfull(13, 16) && !overfull(12, 16));
        let mut big = table(32);
        // Rounds 10 and 11 were written by a flush the checkpoint does not cover.
        let copied = rehash(&BufSlots(&mut small), &mut BufSlots(&mut big), SALT, 10).unwrap();
        assert_eq!(copied, 10);
        for i in 0..12u64 {
            let want = (i < 10).then_some(i);
            assert_eq!(find(&BufSlots(&mut big), key(i), SALT, 12).unwrap(), want);
        }
    }

    #[test]
    fn leftovers_of_an_interrupted_flush_are_reused() {
        let mut buf = table(16);
        insert(&mut BufSlots(&mut buf), key(1), 0, SALT).unwrap();
        // A flush wrote round 5 with key 2, then died before its checkpoint, which covers round
        // 0 only; the log, folded again, has key 2 in round 1.
        insert(&mut BufSlots(&mut buf), key(2), 5, SALT).unwrap();
        assert!(insert(&mut BufSlots(&mut buf), key(2), 1, SALT).unwrap());
        assert_eq!(find(&BufSlots(&mut buf), key(2), SALT, 2).unwrap(), Some(1));
        assert_eq!(find(&BufSlots(&mut buf), key(1), SALT, 2).unwrap(), Some(0));
        assert_eq!(scan(&buf, SALT).unwrap(), 2, "the leftover slot was reused");
    }
}
