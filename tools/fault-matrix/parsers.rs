//! The parser rows: seeded random and mutated inputs (samples: the `.ots` file of
//! `tests/vectors/python-ots-fixtures.json`, a real log, Python rows and journal) to every parser of untrusted bytes, in
//! process: the `.ots` file parser, the log's record framing followed by the batch walk and the
//! event codec (what the log reader does with each record once it is mapped), the segment header,
//! the event codec alone, the Python calendar's LevelDB proof rows and its journal. A panic is
//! caught and counted (0 allowed); a run longer than [`HANG`] counts as a hang (0 allowed). The HTTP
//! request path is fuzzed against a live `otsd` in the abuse rows (`abuse.rs`).
use std::path::Path;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{build_log, Row, TempDir};

/// A single parse taking longer than this is a hang.
const HANG: Duration = Duration::from_secs(1);
/// The journal target reads a real file, so it runs once per this many runs of the others.
const JOURNAL_EVERY: u64 = 100;

#[derive(Clone, Copy)]
enum Target {
    OtsFile,
    LogRecord,
    SegmentHeader,
    EventCodec,
    PyDbRow,
    PyJournal,
}

const TARGETS: [(Target, &str); 6] = [
    (Target::OtsFile, "parser: .ots file"),
    (
        Target::LogRecord,
        "parser: log reader (record, batch, events)",
    ),
    (Target::SegmentHeader, "parser: segment header"),
    (Target::EventCodec, "parser: event codec"),
    (Target::PyDbRow, "parser: Python db proof row"),
    (Target::PyJournal, "parser: Python journal"),
];

/// One row per target, `runs` inputs each (the journal `runs / JOURNAL_EVERY`).
pub fn rows(seed: u64, runs: u64) -> Vec<Row> {
    let samples = samples();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let journal = TempDir::new().ok();
    let rows = TARGETS
        .iter()
        .enumerate()
        .map(|(i, &(target, name))| {
            let n = match target {
                Target::PyJournal => (runs / JOURNAL_EVERY).max(1),
                _ => runs,
            };
            let pool = samples_for(target, &samples);
            let mut rng = StdRng::seed_from_u64(seed ^ (0x70 + i as u64));
            fuzz(name, target, n, &pool, &mut rng, journal.as_ref())
        })
        .collect();
    std::panic::set_hook(default_hook);
    rows
}

fn fuzz(
    name: &'static str,
    target: Target,
    n: u64,
    pool: &[Vec<u8>],
    rng: &mut StdRng,
    journal: Option<&TempDir>,
) -> Row {
    let mut row = Row::new(name, n);
    let (mut panics, mut hangs, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut first = None;
    for _ in 0..n {
        let input = input(rng, pool);
        let t = Instant::now();
        let ok = std::panic::catch_unwind(|| parse_one(target, &input, journal)).is_ok();
        let took = t.elapsed();
        slowest = slowest.max(took);
        if !ok {
            panics += 1;
        }
        if took > HANG {
            hangs += 1;
        }
        if (!ok || took > HANG) && first.is_none() {
            first = Some(hex::encode(&input));
        }
        if ok && took <= HANG {
            row.survived += 1;
        }
    }
    row.note = format!(
        "{} seed samples, random and mutated inputs; {panics} panics, {hangs} hangs (> {HANG:?}), \
         slowest run {:.2} ms",
        pool.len(),
        slowest.as_secs_f64() * 1e3
    );
    if let Some(f) = first {
        row.note.push_str(&format!("; FIRST FAILURE: input {f}"));
    }
    row
}

/// Random bytes (30%) or a sample with one to three byte mutations, truncations or insertions.
fn input(rng: &mut StdRng, pool: &[Vec<u8>]) -> Vec<u8> {
    if pool.is_empty() || rng.gen_bool(0.3) {
        return (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
    }
    let mut s = pool[rng.gen_range(0..pool.len())].clone();
    for _ in 0..rng.gen_range(1..4) {
        if s.is_empty() {
            break;
        }
        let at = rng.gen_range(0..s.len());
        match rng.gen_range(0..4) {
            0 => s[at] = rng.gen(),
            1 => s.truncate(at),
            2 => s.insert(at, rng.gen()),
            _ => s[at] ^= 1 << rng.gen_range(0..8),
        }
    }
    s
}

fn parse_one(target: Target, input: &[u8], journal: Option<&TempDir>) {
    match target {
        Target::OtsFile => {
            let _ = otsd::ots::DetachedTimestampFile::from_bytes(input);
        }
        Target::LogRecord => {
            if let Ok(rec) = otsd::log::record::parse(input) {
                otsd::log::record::for_each_event(rec.payload, rec.count, |_, ev| {
                    let _ = otsd::events::codec::decode::<otsd::events::Event>(ev);
                });
            }
        }
        Target::SegmentHeader => {
            let _ = otsd::log::segment::SegmentHeader::decode(input, Path::new("fuzz"));
        }
        Target::EventCodec => {
            let _ = otsd::events::codec::decode::<otsd::events::Event>(input);
        }
        Target::PyDbRow => {
            let _ = otsd::pycal::db::parse_node(input);
        }
        Target::PyJournal => {
            let Some(dir) = journal else { return };
            let path = dir.path().join("journal");
            if std::fs::write(&path, input).is_ok() {
                if let Ok(j) = otsd::pycal::journal::Journal::open(&path) {
                    let mut buf = vec![0u8; 1024 * 44];
                    if j.read_records(0, &mut buf).is_ok() {
                        for record in buf.chunks_exact(44) {
                            if let Ok(r) = <&[u8; 44]>::try_from(record) {
                                let _ = otsd::pycal::journal::commitment(r);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Valid inputs: the `.ots` files of the test vectors, a small log's segment header, records and
/// events, Python proof rows, a Python journal.
struct Samples {
    ots: Vec<Vec<u8>>,
    header: Vec<Vec<u8>>,
    records: Vec<Vec<u8>>,
    events: Vec<Vec<u8>>,
    py_rows: Vec<Vec<u8>>,
    journal: Vec<Vec<u8>>,
}

fn samples_for(target: Target, s: &Samples) -> Vec<Vec<u8>> {
    match target {
        Target::OtsFile => s.ots.clone(),
        Target::LogRecord => s.records.clone(),
        Target::SegmentHeader => s.header.clone(),
        Target::EventCodec => s.events.clone(),
        Target::PyDbRow => s.py_rows.clone(),
        Target::PyJournal => s.journal.clone(),
    }
}

fn samples() -> Samples {
    let mut s = Samples {
        ots: Vec::new(),
        header: Vec::new(),
        records: Vec::new(),
        events: Vec::new(),
        py_rows: py_rows(),
        journal: Vec::new(),
    };
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/python-ots-fixtures.json");
    let json: serde_json::Value = std::fs::read(fixtures)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    for file in json["detached_files"].as_array().into_iter().flatten() {
        if let Some(bytes) = file.as_str().and_then(|h| hex::decode(h).ok()) {
            s.ots.push(bytes);
        }
    }
    log_samples(&mut s);
    let mut journal = Vec::new();
    for i in 0..5u8 {
        journal.extend_from_slice(&[0, 0, 0, i]);
        journal.extend_from_slice(&[i; 32]);
        journal.extend_from_slice(&if i % 2 == 0 { [0; 8] } else { [i; 8] });
    }
    s.journal.push(journal);
    s
}

/// A real log's segment header, records and (real calendar) events.
fn log_samples(s: &mut Samples) {
    let Ok(dir) = TempDir::new() else { return };
    if build_log(dir.path(), 7).is_err() {
        return;
    }
    let Ok(Some(first)) = otsd::log::segment::list_segments(dir.path()).map(|v| v.first().copied())
    else {
        return;
    };
    let Ok(bytes) = std::fs::read(dir.path().join(otsd::log::segment::segment_name(first))) else {
        return;
    };
    let header = otsd::log::segment::HEADER_LEN.min(bytes.len());
    s.header.push(bytes[..header].to_vec());
    let mut at = header;
    while let Ok(rec) = otsd::log::record::parse(&bytes[at..]) {
        s.records.push(rec.bytes.to_vec());
        at += rec.len();
        if s.records.len() >= 50 {
            break;
        }
    }
    s.events = sample_events();
}

/// One encoded event of each common kind.
fn sample_events() -> Vec<Vec<u8>> {
    use otsd::events::Event;
    let events = [
        Event::DigestSubmitted {
            digest: vec![3; 32],
            nonce: [9; 16],
        },
        Event::RoundSealed {
            round: 7,
            time: 1_700_000_000,
            root: [1; 32],
            mac: [2; 8],
            commitment: vec![4; 44],
            digests: 12,
        },
        Event::TxBroadcast {
            txid: [5; 32],
            raw_tx: vec![2, 0, 0, 0, 1, 6, 6, 6],
            tip: [6; 32],
            first_round: 0,
            last_round: 7,
            fee_sat: 200,
            feerate_sat_per_kvb: 1000,
            input_sat: 10_000,
            height: 100,
            replaces: Some([8; 32]),
            log_head: None,
        },
        Event::TxConfirmed {
            txid: [5; 32],
            block_hash: [0x22; 32],
            height: 101,
            block_txids: [[0x77; 32], [5; 32]].concat(),
        },
    ];
    events
        .iter()
        .filter_map(|e| otsd::events::codec::encode(e).ok())
        .collect()
}

/// Python proof rows: `varuint n_att, attestations, varuint n_ops, ops`.
fn py_rows() -> Vec<Vec<u8>> {
    use otsd::ots::{Attestation, Op};
    let atts = [
        Attestation::pending("https://alice.btc.calendar.opentimestamps.org"),
        Some(Attestation::Bitcoin { height: 358391 }),
    ];
    let ops = [
        Op::Sha256,
        Op::Append(vec![7; 32]),
        Op::Prepend(vec![1, 2, 3]),
        Op::Ripemd160,
    ];
    let mut rows = Vec::new();
    for (na, no) in [(0, 1), (1, 0), (1, 2), (2, 4), (0, 4)] {
        let mut row = Vec::new();
        otsd::ots::ser::write_varuint(&mut row, na as u64);
        for a in atts.iter().flatten().take(na) {
            a.write(&mut row);
        }
        otsd::ots::ser::write_varuint(&mut row, no as u64);
        for o in ops.iter().take(no) {
            o.write(&mut row);
        }
        rows.push(row);
    }
    rows
}
