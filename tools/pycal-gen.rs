//! pycal-gen: writes a synthetic Python otsd calendar directory (for the `otsctl import-otsd`
//! bench), in the documented format of `log-format/python-calendar.md`, through a LevelDB library
//! (rusty-leveldb, Snappy-compressed tables like the Python server's py-leveldb).
//!
//! `uri`, `donation_addr`, `hmac-key` (32 bytes from `--seed`), `journal` (44-byte records, times
//! one second apart, MACs under the key; the first `--legacy` records are legacy ones with a zero
//! MAC) and `db/`: the rows the Python stamper writes for stamping transactions of `--per-tx`
//! commitments each (commitment, its leaf, the tip's Merkle tree, the transaction, the block's
//! Merkle path in a block of `--block-txs` transactions, the block header attestation). The last
//! `--pending` records get no rows.
//!
//! Speed: writing rows in the stamper's order (random keys) makes LevelDB compact the same bytes
//! again and again (about 9 minutes per million commitments through rusty-leveldb). So the rows
//! are first spread over [`BUCKETS`] scratch files by their first key byte, then each bucket is
//! sorted in memory and written in key order, in batches of [`BATCH_BYTES`]: memtable flushes
//! then never overlap and every compaction is a trivial move. The database holds the same rows
//! either way; only the table layout differs (each key in one table, as after a full compaction).
//! Memory: the largest bucket (the commitments' keys share their first byte, about 50 B each).
//!
//! ```text
//! cargo build --release --bin pycal-gen
//! target/release/pycal-gen --dir /tmp/pycal-10m --commitments 10000000
//! ```
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use std::fs::File;
use std::io::{BufWriter, Read};

use rusty_leveldb::{Options, WriteBatch, DB};
use sha2::{Digest, Sha256};

use otsd::calendar::mac::CommitmentMac;
use otsd::ots::ser::{write_varbytes, write_varuint};

#[derive(Parser)]
#[command(about = "Write a synthetic Python otsd calendar (journal + LevelDB) for benchmarks")]
struct Args {
    /// The Python calendar directory to create (must not exist)
    #[arg(long)]
    dir: PathBuf,
    /// Journal records
    #[arg(long, default_value_t = 10_000_000)]
    commitments: u64,
    /// Commitments per stamping transaction
    #[arg(long, default_value_t = 1000)]
    per_tx: u64,
    /// Transactions in each block (sets the depth of the block Merkle path)
    #[arg(long, default_value_t = 1000)]
    block_txs: usize,
    /// The last records have no rows (pending)
    #[arg(long, default_value_t = 0)]
    pending: u64,
    /// The first records are legacy ones (zero MAC, 36-byte keys)
    #[arg(long, default_value_t = 0)]
    legacy: u64,
    /// Seed of the key and of every synthetic hash
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn sha256d(parts: &[&[u8]]) -> Hash {
    sha256(&[&sha256(parts)])
}

/// A row of one operation: `00 01 <op>`.
fn op_row(tag: u8, arg: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![0x00, 0x01, tag];
    if let Some(arg) = arg {
        write_varbytes(&mut v, arg);
    }
    v
}

const SHA256: u8 = 0x08;
const APPEND: u8 = 0xf0;
const PREPEND: u8 = 0xf1;
const BITCOIN_TAG: [u8; 8] = [0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01];

/// Scratch files the rows are spread over, by their key's first byte.
const BUCKETS: usize = 256;
/// Bytes of rows per LevelDB write batch in the sorted pass.
const BATCH_BYTES: usize = 4 << 20;

/// The rows, spread by first key byte: `u32 LE key length, u32 LE value length, key, value`.
struct Buckets {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
}

impl Buckets {
    fn new(dir: PathBuf) -> anyhow::Result<Buckets> {
        std::fs::create_dir_all(&dir)?;
        let files = (0..BUCKETS)
            .map(|b| {
                Ok(BufWriter::with_capacity(
                    1 << 18,
                    File::create(dir.join(b.to_string()))?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Buckets { dir, files })
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let f = &mut self.files[usize::from(key.first().copied().unwrap_or(0))];
        f.write_all(&(key.len() as u32).to_le_bytes())?;
        f.write_all(&(value.len() as u32).to_le_bytes())?;
        f.write_all(key)?;
        f.write_all(value)
    }

    /// Sorts every bucket and writes it into `db` in key order; returns the rows written.
    fn into_db(self, db: &mut DB) -> anyhow::Result<u64> {
        let mut rows = 0u64;
        let dir = self.dir;
        for (b, f) in self.files.into_iter().enumerate() {
            let f = f.into_inner().map_err(|e| e.into_error())?;
            drop(f);
            let path = dir.join(b.to_string());
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            std::fs::remove_file(&path)?;
            let mut at = Vec::new();
            let mut pos = 0usize;
            while pos + 8 <= bytes.len() {
                let k = u32::from_le_bytes(bytes[pos..pos + 4].try_into()?) as usize;
                let v = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into()?) as usize;
                at.push((pos + 8, k, v));
                pos += 8 + k + v;
            }
            at.sort_unstable_by(|a, b| bytes[a.0..a.0 + a.1].cmp(&bytes[b.0..b.0 + b.1]));
            let mut batch = WriteBatch::default();
            let mut batch_bytes = 0;
            for &(p, k, v) in &at {
                batch.put(&bytes[p..p + k], &bytes[p + k..p + k + v]);
                batch_bytes += k + v;
                if batch_bytes >= BATCH_BYTES {
                    db.write(std::mem::take(&mut batch), false)
                        .context("LevelDB write")?;
                    batch_bytes = 0;
                }
            }
            if batch_bytes > 0 {
                db.write(batch, false).context("LevelDB write")?;
            }
            rows += at.len() as u64;
        }
        std::fs::remove_dir(&dir)?;
        Ok(rows)
    }
}

struct Gen {
    buckets: Buckets,
    seed: u64,
    counter: u64,
    rows: u64,
}

impl Gen {
    fn random(&mut self) -> Hash {
        self.counter += 1;
        sha256(&[&self.seed.to_le_bytes(), &self.counter.to_le_bytes()])
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.rows += 1;
        self.buckets.put(key, value)
    }

    /// The rows of one stamping transaction over `commitments`, in block `height`.
    fn transaction(
        &mut self,
        commitments: &[Vec<u8>],
        height: u32,
        block_txs: usize,
    ) -> anyhow::Result<()> {
        let mut level: Vec<Vec<u8>> = Vec::with_capacity(commitments.len());
        for c in commitments {
            self.put(c, &op_row(SHA256, None))?;
            level.push(sha256(&[c]).to_vec());
        }
        // python-opentimestamps make_merkle_tree: pairs, an odd last one carried up.
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / 2 + 1);
            for pair in level.chunks(2) {
                if let [l, r] = pair {
                    self.put(l, &op_row(APPEND, Some(r)))?;
                    self.put(r, &op_row(PREPEND, Some(l)))?;
                    let cat = [&l[..], &r[..]].concat();
                    self.put(&cat, &op_row(SHA256, None))?;
                    next.push(sha256(&[&cat]).to_vec());
                } else {
                    next.push(pair[0].clone());
                }
            }
            level = next;
        }
        let tip = level.pop().unwrap_or_default();
        let (prefix, suffix) = self.tx_around(height);
        self.put(&tip, &op_row(PREPEND, Some(&prefix)))?;
        let with_prefix = [&prefix[..], &tip].concat();
        self.put(&with_prefix, &op_row(APPEND, Some(&suffix)))?;
        let tx = [&with_prefix[..], &suffix].concat();
        self.put(&tx, &op_row(SHA256, None))?;
        let once = sha256(&[&tx]);
        self.put(&once, &op_row(SHA256, None))?;
        let txid = sha256(&[&once]);
        Ok(self.block_path(txid, height, block_txs)?)
    }

    /// A 1-in/2-out transaction (change, then `OP_RETURN <tip>`): the bytes before and after the tip.
    fn tx_around(&mut self, height: u32) -> (Vec<u8>, Vec<u8>) {
        let mut p = vec![1, 0, 0, 0, 1];
        p.extend_from_slice(&self.random());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 2]);
        p.extend_from_slice(&100_000u64.to_le_bytes());
        p.extend_from_slice(&[0x16, 0x00, 0x14]);
        p.extend_from_slice(&self.random()[..20]);
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&[0x22, 0x6a, 0x20]);
        (p, (height - 1).to_le_bytes().to_vec())
    }

    /// Satoshi's Merkle path of the transaction at index 1 of a block of `n` transactions.
    fn block_path(&mut self, txid: Hash, height: u32, n: usize) -> std::io::Result<()> {
        let mut level: Vec<Hash> = (0..n.max(2)).map(|_| self.random()).collect();
        level[1] = txid;
        let mut index = 1;
        while level.len() > 1 {
            if level.len() % 2 == 1 {
                level.push(level[level.len() - 1]);
            }
            let (node, sibling) = (level[index], level[index ^ 1]);
            let cat = if index % 2 == 0 {
                self.put(&node, &op_row(APPEND, Some(&sibling)))?;
                [node, sibling].concat()
            } else {
                self.put(&node, &op_row(PREPEND, Some(&sibling)))?;
                [sibling, node].concat()
            };
            self.put(&cat, &op_row(SHA256, None))?;
            let once = sha256(&[&cat]);
            self.put(&once, &op_row(SHA256, None))?;
            level = level.chunks(2).map(|p| sha256d(&[&p[0], &p[1]])).collect();
            index /= 2;
        }
        let mut att = vec![0x01];
        att.extend_from_slice(&BITCOIN_TAG);
        let mut payload = Vec::new();
        write_varuint(&mut payload, u64::from(height));
        write_varbytes(&mut att, &payload);
        att.push(0x00);
        self.put(&level[0], &att)
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.dir.exists() {
        bail!("{} exists", a.dir.display());
    }
    std::fs::create_dir_all(&a.dir)?;
    let key = sha256(&[b"pycal-gen key", &a.seed.to_le_bytes()]);
    std::fs::write(a.dir.join("hmac-key"), key)?;
    std::fs::write(a.dir.join("uri"), "http://127.0.0.1:14788\n")?;
    std::fs::write(a.dir.join("donation_addr"), "bcrt1qsynthetic0calendar\n")?;
    let opts = Options {
        compressor: 1, // Snappy, as py-leveldb writes
        ..Options::default()
    };
    let mut db = DB::open(a.dir.join("db"), opts).context("create the LevelDB")?;
    let mut gen = Gen {
        buckets: Buckets::new(a.dir.join("rows.scratch"))?,
        seed: a.seed,
        counter: 0,
        rows: 0,
    };
    let mut journal =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(a.dir.join("journal"))?);
    let mut mac = CommitmentMac::new(&key);
    let started = Instant::now();
    let confirmed = a.commitments.saturating_sub(a.pending);
    let mut time: u32 = 1_500_000_000;
    let mut height = 500_000;
    let mut next = 0u64;
    while next < a.commitments {
        let n = a.per_tx.min(a.commitments - next);
        let mut round = Vec::with_capacity(n as usize);
        for i in next..next + n {
            time += 1;
            let root = gen.random();
            let mut c = mac.commitment(time, &root).to_vec();
            if i < a.legacy {
                c[36..].fill(0);
            }
            journal.write_all(&c)?;
            let len = otsd::calendar::legacy::client_message(&c).len();
            c.truncate(len);
            round.push(c);
        }
        let stamped: Vec<Vec<u8>> = round
            .into_iter()
            .zip(next..)
            .filter(|(_, i)| *i < confirmed)
            .map(|(c, _)| c)
            .collect();
        if !stamped.is_empty() {
            height += 1;
            gen.transaction(&stamped, height, a.block_txs)?;
        }
        next += n;
        if (next / a.per_tx).is_multiple_of(1000) || next == a.commitments {
            eprintln!(
                "... {next} commitments, {} rows, {:.0}s",
                gen.rows,
                started.elapsed().as_secs_f64()
            );
        }
    }
    journal.flush()?;
    journal.get_ref().sync_all()?;
    eprintln!(
        "... {} rows spread, {:.0}s; sorting and writing them",
        gen.rows,
        started.elapsed().as_secs_f64()
    );
    let written = gen.buckets.into_db(&mut db)?;
    if written != gen.rows {
        bail!("wrote {written} rows of {}", gen.rows);
    }
    db.flush().context("LevelDB flush")?;
    db.close().context("LevelDB close")?;
    println!(
        "wrote {} commitments ({} pending, {} legacy), {} rows into {} in {:.1}s",
        a.commitments,
        a.commitments - confirmed,
        a.legacy.min(a.commitments),
        gen.rows,
        a.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
