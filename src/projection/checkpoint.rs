//! Projection checkpoints: the projection as folded up to a segment boundary, kept on disk so otsd
//! starts without replaying the whole log.
//!
//! A checkpoint is a rebuildable cache, never a source of truth: `otsctl replay` rebuilds it from
//! the log alone, and a checkpoint that is missing, damaged, from another version, from another
//! calendar or for another log is ignored (with a warning) and the log is replayed in full.
//!
//! Two files under `DIR/projection/`:
//!
//! - `rounds`: the round table, append-only, [`ROUND_LEN`] bytes per round:
//!   `commitment (44) | time u32 LE | digests u32 LE | seal_seq u64 LE`. Rounds never change once
//!   sealed, so each checkpoint only appends the rounds sealed since the previous one; bytes past the
//!   count the snapshot names are leftovers of an interrupted write and are cut off.
//! - `checkpoint`: the snapshot, replaced atomically (`.tmp`, fsync, rename, directory fsync):
//!
//! ```text
//! offset size
//!      0    8  magic "OTSDCKPT"
//!      8    4  version, u32 LE (1)
//!     12    4  min_confirmations the fold used, u32 LE
//!     16    8  next_seq: first sequence number not folded, u64 LE (a segment's first_seq)
//!     24   32  public chain value after the last record before next_seq (that segment's header)
//!     56   32  HMAC chain value, likewise
//!     88    8  rounds: how many entries of `rounds` belong to this snapshot, u64 LE
//!     96   32  SHA-256 of those rounds * ROUND_LEN bytes of `rounds`
//!    128    4  body length, u32 LE
//!    132    n  body: the rest of the projection (digest count, stamper state), packed CBOR
//!  132+n   32  HMAC-SHA256 under the checkpoint key over bytes 0 .. 132+n
//! ```
//!
//! The checkpoint key is `HMAC-SHA256(log key, "otsd checkpoint v1")`, so only the holder of the
//! calendar's `hmac-key` can make a checkpoint otsd accepts, as for the log itself. The chain values
//! tie the snapshot to one log: the segment named `next_seq` must carry them in its header, and the
//! records after it chain from them under the key, so a snapshot cannot be replayed onto another or
//! a truncated log.
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Projection, RoundEntry, Stamps};
use crate::calendar::commitment::{Commitment, COMMITMENT_LEN};
use crate::events::codec;
use crate::log::atomic::write_atomically;
use crate::log::chain::ChainState;
use crate::log::{Head, LogKey};

/// Name of the projection directory inside the calendar directory.
pub const PROJECTION_DIR: &str = "projection";
/// Bytes per round in the `rounds` file.
pub const ROUND_LEN: usize = COMMITMENT_LEN + 4 + 4 + 8;
/// Largest snapshot body accepted (the stamper state is small; this bounds a damaged length).
pub const MAX_BODY_LEN: usize = 256 << 20;

const ROUNDS_FILE: &str = "rounds";
const SNAPSHOT_FILE: &str = "checkpoint";
const MAGIC: &[u8; 8] = b"OTSDCKPT";
const VERSION: u32 = 1;
const FIXED_LEN: usize = 132;
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("encoding the checkpoint: {0}")]
    Codec(#[from] codec::CodecError),
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> CheckpointError + 'p {
    move |source| CheckpointError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    digests_total: u64,
    open_digests: u32,
    stamps: Stamps,
}

/// A checkpoint read from disk: the projection and the log position it stands for.
#[derive(Debug)]
pub struct Loaded {
    pub view: Projection,
    /// `next_seq` and the chain values the segment named `next_seq` must carry.
    pub at: Head,
}

/// The checkpoint files of one projection directory, and how much of `rounds` is written.
#[derive(Debug)]
pub struct CheckpointFiles {
    dir: PathBuf,
    key: [u8; 32],
    /// Rounds already in `rounds` (and covered by `rounds_sha256`).
    rounds_written: u64,
    rounds_sha256: Sha256,
    /// Log head the current snapshot stands for.
    at: Option<Head>,
}

impl CheckpointFiles {
    /// The files under `dir` (created on the first write), starting with no usable checkpoint.
    pub fn new(dir: &Path, log_key: &LogKey) -> CheckpointFiles {
        CheckpointFiles {
            dir: dir.to_path_buf(),
            key: checkpoint_key(log_key),
            rounds_written: 0,
            rounds_sha256: Sha256::new(),
            at: None,
        }
    }

    /// The projection directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log head of the last snapshot written or loaded.
    pub fn at(&self) -> Option<Head> {
        self.at
    }

    /// Reads the checkpoint, if there is one. `Ok(None)`: none on disk. An error names what is
    /// wrong with it; the caller replays the log instead.
    pub fn load(&mut self, min_confirmations: u32) -> Result<Option<Loaded>, CheckpointError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let invalid = |why: String| CheckpointError::Invalid {
            path: path.clone(),
            why,
        };
        let snap = Snapshot::decode(&bytes, &self.key).map_err(invalid)?;
        if snap.min_confirmations != min_confirmations {
            return Err(invalid(format!(
                "made with --btc-min-confirmations {}, otsd runs with {min_confirmations}",
                snap.min_confirmations
            )));
        }
        let body: Body = codec::decode(snap.body).map_err(|e| invalid(e.to_string()))?;
        let rounds_path = self.dir.join(ROUNDS_FILE);
        let (rounds, sha) = read_rounds(&rounds_path, snap.rounds)?;
        let digest: [u8; 32] = sha.clone().finalize().into();
        if digest != snap.rounds_sha256 {
            return Err(CheckpointError::Invalid {
                path: rounds_path,
                why: "round table does not match its checkpoint".into(),
            });
        }
        self.rounds_written = snap.rounds;
        self.rounds_sha256 = sha;
        self.at = Some(snap.at);
        let view = Projection::restore(
            rounds,
            body.digests_total,
            body.open_digests,
            snap.at.next_seq,
            body.stamps,
        );
        Ok(Some(Loaded { view, at: snap.at }))
    }

    /// Writes `view`, the fold of the log up to `at`, as the new checkpoint: appends its new rounds
    /// to `rounds`, syncs, then replaces the snapshot atomically. A crash at any point leaves the
    /// previous checkpoint or the new one, never a mix.
    pub fn write(&mut self, view: &Projection, at: Head) -> Result<(), CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let rounds = view.rounds();
        if (rounds.len() as u64) < self.rounds_written {
            // A projection behind the files (another log): start the table again.
            self.rounds_written = 0;
            self.rounds_sha256 = Sha256::new();
        }
        let rounds_path = self.dir.join(ROUNDS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&rounds_path)
            .map_err(io("open", &rounds_path))?;
        let start = self.rounds_written * ROUND_LEN as u64;
        file.set_len(start).map_err(io("truncate", &rounds_path))?;
        let new = &rounds[self.rounds_written as usize..];
        let mut buf = Vec::with_capacity(new.len() * ROUND_LEN);
        for r in new {
            encode_round(r, &mut buf);
        }
        file.write_all_at(&buf, start)
            .map_err(io("write", &rounds_path))?;
        file.sync_data().map_err(io("fdatasync", &rounds_path))?;
        let mut sha = self.rounds_sha256.clone();
        sha.update(&buf);

        let (digests_total, open_digests, stamps) = view.checkpoint_parts();
        let body = codec::encode(&Body {
            digests_total,
            open_digests,
            stamps: stamps.clone(),
        })?;
        let snap = Snapshot {
            min_confirmations: view.min_confirmations(),
            at,
            rounds: rounds.len() as u64,
            rounds_sha256: sha.clone().finalize().into(),
            body: &body,
        };
        let bytes = snap.encode(&self.key);
        write_atomically(&self.dir, SNAPSHOT_FILE, &bytes).map_err(|e| CheckpointError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        self.rounds_written = rounds.len() as u64;
        self.rounds_sha256 = sha;
        self.at = Some(at);
        Ok(())
    }

    /// Removes the checkpoint files (a full replay follows).
    pub fn remove(&mut self) -> Result<(), CheckpointError> {
        for name in [SNAPSHOT_FILE, ROUNDS_FILE] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        self.rounds_written = 0;
        self.rounds_sha256 = Sha256::new();
        self.at = None;
        Ok(())
    }
}

fn checkpoint_key(log_key: &LogKey) -> [u8; 32] {
    let mut mac = new_mac(log_key.as_bytes());
    mac.update(b"otsd checkpoint v1");
    mac.finalize().into_bytes().into()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of every length"),
    }
}

fn encode_round(r: &RoundEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&r.commitment);
    out.extend_from_slice(&r.time.to_le_bytes());
    out.extend_from_slice(&r.digests.to_le_bytes());
    out.extend_from_slice(&r.seal_seq.to_le_bytes());
}

fn decode_round(b: &[u8]) -> RoundEntry {
    let le4 = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut commitment: Commitment = [0; COMMITMENT_LEN];
    commitment.copy_from_slice(&b[..COMMITMENT_LEN]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[COMMITMENT_LEN + 8..ROUND_LEN]);
    RoundEntry {
        commitment,
        time: le4(COMMITMENT_LEN),
        digests: le4(COMMITMENT_LEN + 4),
        seal_seq: u64::from_le_bytes(seq),
    }
}

/// Reads the first `count` rounds of the table, and the SHA-256 state over their bytes.
fn read_rounds(path: &Path, count: u64) -> Result<(Vec<RoundEntry>, Sha256), CheckpointError> {
    let len = count
        .checked_mul(ROUND_LEN as u64)
        .and_then(|l| usize::try_from(l).ok())
        .ok_or_else(|| CheckpointError::Invalid {
            path: path.to_path_buf(),
            why: format!("{count} rounds do not fit in memory"),
        })?;
    let mut file = File::open(path).map_err(io("open", path))?;
    let size = file.metadata().map_err(io("stat", path))?.len();
    if size < len as u64 {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            why: format!("holds {size} bytes, the checkpoint names {len}"),
        });
    }
    let mut bytes = vec![0u8; len];
    file.read_exact(&mut bytes).map_err(io("read", path))?;
    let mut sha = Sha256::new();
    sha.update(&bytes);
    let rounds = bytes.chunks_exact(ROUND_LEN).map(decode_round).collect();
    Ok((rounds, sha))
}

/// The `checkpoint` file, decoded.
struct Snapshot<'a> {
    min_confirmations: u32,
    at: Head,
    rounds: u64,
    rounds_sha256: [u8; 32],
    body: &'a [u8],
}

impl<'a> Snapshot<'a> {
    fn encode(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.min_confirmations.to_le_bytes());
        out.extend_from_slice(&self.at.next_seq.to_le_bytes());
        out.extend_from_slice(&self.at.chain.hash);
        out.extend_from_slice(&self.at.chain.tag);
        out.extend_from_slice(&self.rounds.to_le_bytes());
        out.extend_from_slice(&self.rounds_sha256);
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(self.body);
        let mut mac = new_mac(key);
        mac.update(&out);
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        out.extend_from_slice(&tag);
        out
    }

    fn decode(bytes: &'a [u8], key: &[u8; 32]) -> Result<Snapshot<'a>, String> {
        if bytes.len() < FIXED_LEN + TAG_LEN || &bytes[..8] != MAGIC {
            return Err("not a checkpoint (bad magic or too short)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let b32_at = |i: usize| <[u8; 32]>::try_from(&bytes[i..i + 32]).unwrap_or([0; 32]);
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "checkpoint version {version}, this otsd reads {VERSION}"
            ));
        }
        let body_len = u32_at(128) as usize;
        if body_len > MAX_BODY_LEN || bytes.len() != FIXED_LEN + body_len + TAG_LEN {
            return Err("length does not match its header (truncated?)".into());
        }
        let signed = &bytes[..FIXED_LEN + body_len];
        let mut mac = new_mac(key);
        mac.update(signed);
        if mac.verify_slice(&bytes[FIXED_LEN + body_len..]).is_err() {
            return Err("HMAC does not verify: damaged, or made with another key".into());
        }
        Ok(Snapshot {
            min_confirmations: u32_at(12),
            at: Head {
                next_seq: u64_at(16),
                chain: ChainState {
                    hash: b32_at(24),
                    tag: b32_at(56),
                },
            },
            rounds: u64_at(88),
            rounds_sha256: b32_at(96),
            body: &bytes[FIXED_LEN..FIXED_LEN + body_len],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn view_with_rounds(n: u64) -> Projection {
        let mut view = Projection::new(3);
        let mut seq = 0;
        for round in 0..n {
            view.apply(
                seq,
                &Event::DigestSubmitted {
                    digest: vec![round as u8; 32],
                    nonce: [0; 16],
                },
            )
            .unwrap();
            let mut commitment = vec![round as u8; COMMITMENT_LEN];
            commitment[0..8].copy_from_slice(&round.to_be_bytes());
            view.apply(
                seq + 1,
                &Event::RoundSealed {
                    round,
                    time: 1_700_000_000 + round as u32,
                    root: [1; 32],
                    mac: [2; 8],
                    commitment,
                    digests: 1,
                },
            )
            .unwrap();
            seq += 2;
        }
        view
    }

    fn head(next_seq: u64) -> Head {
        Head {
            next_seq,
            chain: ChainState {
                hash: [7; 32],
                tag: [8; 32],
            },
        }
    }

    #[test]
    fn a_written_checkpoint_loads_back_identical_and_grows_by_appending() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let mut files = CheckpointFiles::new(dir.path(), &key);
        let small = view_with_rounds(3);
        files.write(&small, head(6)).unwrap();
        let big = view_with_rounds(10);
        files.write(&big, head(20)).unwrap();
        let size = fs::metadata(dir.path().join(ROUNDS_FILE)).unwrap().len();
        assert_eq!(size, 10 * ROUND_LEN as u64);

        let mut again = CheckpointFiles::new(dir.path(), &key);
        let loaded = again.load(3).unwrap().expect("a checkpoint");
        assert_eq!(loaded.at, head(20));
        assert_eq!(loaded.view.rounds(), big.rounds());
        assert_eq!(loaded.view.digests_total(), 10);
        assert_eq!(loaded.view.next_seq(), 20);
        let c = big.rounds()[4].commitment;
        assert_eq!(loaded.view.status(&c), big.status(&c));
    }

    #[test]
    fn damage_another_key_or_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::from_bytes([9; 32]);
        let mut files = CheckpointFiles::new(dir.path(), &key);
        files.write(&view_with_rounds(4), head(8)).unwrap();

        let other = LogKey::from_bytes([1; 32]);
        let err = CheckpointFiles::new(dir.path(), &other)
            .load(3)
            .unwrap_err();
        assert!(err.to_string().contains("HMAC"), "{err}");
        let err = CheckpointFiles::new(dir.path(), &key).load(6).unwrap_err();
        assert!(err.to_string().contains("min-confirmations"), "{err}");

        let rounds = dir.path().join(ROUNDS_FILE);
        let mut bytes = fs::read(&rounds).unwrap();
        bytes[5] ^= 1;
        fs::write(&rounds, &bytes).unwrap();
        let err = CheckpointFiles::new(dir.path(), &key).load(3).unwrap_err();
        assert!(err.to_string().contains("round table"), "{err}");

        let snap = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&snap).unwrap();
        let n = bytes.len();
        bytes.truncate(n - 1);
        fs::write(&snap, &bytes).unwrap();
        assert!(CheckpointFiles::new(dir.path(), &key).load(3).is_err());

        fs::remove_file(&snap).unwrap();
        assert!(CheckpointFiles::new(dir.path(), &key)
            .load(3)
            .unwrap()
            .is_none());
    }
}
