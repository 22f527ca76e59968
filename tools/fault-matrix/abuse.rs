//! The abuse rows, each against a fresh `otsd`: slowloris sockets, a 10x overload, and fuzzed
//! requests (the HTTP request path: hyper's parser, warp's filters, the handlers), while legitimate
//! clients measure what they get.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::harness::{self, init_calendar, load, ms, percentile, Daemon};
use crate::{Row, TempDir};

/// Longest p99 a legitimate client may see during an attack.
const LEGIT_P99_BOUND: Duration = Duration::from_secs(1);
/// The share of the peak goodput a 10x overload must keep.
const GOODPUT_SHARE: f64 = 0.9;
/// Clients of the peak measurement; the overload runs ten times as many.
const PEAK_WORKERS: u32 = 4;
/// How long the server may take to cut off a slowloris socket.
const SLOWLORIS_CUTOFF: Duration = Duration::from_secs(30);
/// A fuzzed request without an answer or a close within this is a hang.
const FUZZ_HANG: Duration = Duration::from_secs(10);

fn failure(row: &mut Row, what: String) {
    row.survived = 0;
    if !row.note.contains("FIRST FAILURE") {
        row.note.push_str(&format!("; FIRST FAILURE: {what}"));
    }
}

fn fresh() -> anyhow::Result<(TempDir, Daemon)> {
    let dir = TempDir::new()?;
    let cal = init_calendar(dir.path(), "http://127.0.0.1:1")?;
    let d = Daemon::start(&cal, &[], &[])?;
    Ok((dir, d))
}

/// Whether otsd is still up and panic-free, and serves a digest.
fn healthy(d: &mut Daemon) -> Result<(), String> {
    if let Ok(Some(status)) = d.child.try_wait() {
        return Err(format!("otsd exited with {status}"));
    }
    if d.panicked.load(Ordering::Relaxed) {
        return Err("a panic in otsd's log".into());
    }
    match harness::post_digest(d.addr, &[0x42; 32]) {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("a digest afterwards: {} {}", r.status, r.text())),
        Err(e) => Err(format!("a digest afterwards: {e}")),
    }
}

pub fn rows(seed: u64, sockets: u64, overload_secs: u64, fuzz: u64) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if sockets > 0 {
        rows.push(slowloris(sockets)?);
    }
    if overload_secs > 0 {
        rows.push(overload(overload_secs)?);
    }
    if fuzz > 0 {
        rows.push(fuzzed(seed, fuzz)?);
    }
    Ok(rows)
}

/// Legitimate clients: 2 workers, 10 ms apart, for `secs`.
fn legit(addr: SocketAddr, secs: u64, tag: u64) -> harness::LoadResult {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| load(addr, 2, tag, Duration::from_millis(10), &stop));
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    })
}

// ---- slowloris -----------------------------------------------------------------------------

/// `n` sockets that send the start of a request and then one byte a second; the server must cut
/// each off, and legitimate clients meanwhile get every digest answered with a bounded p99.
fn slowloris(n: u64) -> anyhow::Result<Row> {
    let (_dir, mut d) = fresh()?;
    let mut row = Row::new("abuse: slowloris sockets", n);
    let base = legit(d.addr, 3, 3_000_000);
    let mut base_lat = base.latencies;
    let t = Instant::now();
    let mut socks = Vec::new();
    let mut connect_errors = 0;
    for _ in 0..n {
        match TcpStream::connect(d.addr) {
            Ok(mut s) => {
                let _ = s.write_all(b"POST /digest HTTP/1.1\r\nHost: x\r\n");
                let _ = s.set_nonblocking(true);
                socks.push(Some(s));
            }
            Err(_) => connect_errors += 1,
        }
    }
    let opened = t.elapsed();
    let stop = AtomicBool::new(false);
    let cut = AtomicU64::new(0);
    let (during, cut_in) = std::thread::scope(|s| {
        let trickle = s.spawn(|| {
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) && t.elapsed() < opened + SLOWLORIS_CUTOFF {
                for slot in socks.iter_mut() {
                    let Some(sock) = slot else { continue };
                    let gone = sock.write(b"X").is_err()
                        || matches!(sock.read(&mut buf), Ok(0))
                        || matches!(sock.read(&mut buf), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
                    if gone {
                        *slot = None;
                        cut.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if cut.load(Ordering::Relaxed) + connect_errors >= n {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            t.elapsed()
        });
        let during = legit(d.addr, 10, 3_100_000);
        let cut_in = trickle.join().unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        (during, cut_in)
    });
    let cut = cut.load(Ordering::Relaxed);
    row.survived = cut;
    let mut lat = during.latencies;
    let p99 = percentile(&mut lat, 99.0);
    row.note = format!(
        "{n} sockets ({connect_errors} refused at connect) opened in {:.1} s, each sending the \
         start of a request then a byte a second; {cut} cut off by the server within {:.0} s; \
         legitimate clients meanwhile: {} answered, {} refused, {} unanswered, p99 {} (before \
         the attack {})",
        opened.as_secs_f64(),
        cut_in.as_secs_f64(),
        lat.len(),
        during.refused.values().sum::<u64>(),
        during.unanswered,
        ms(p99),
        ms(percentile(&mut base_lat, 99.0)),
    );
    if p99 > LEGIT_P99_BOUND
        || during.unanswered > 0
        || !during.refused.is_empty()
        || lat.is_empty()
    {
        failure(
            &mut row,
            format!("legitimate clients not served within {LEGIT_P99_BOUND:?}"),
        );
    }
    if let Err(e) = healthy(&mut d) {
        failure(&mut row, e);
    }
    Ok(row)
}

// ---- 10x overload --------------------------------------------------------------------------

/// Goodput of `workers` closed-loop clients over `secs`.
fn goodput(addr: SocketAddr, workers: u32, secs: u64, tag: u64) -> (f64, harness::LoadResult) {
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| load(addr, workers, tag, Duration::ZERO, &stop));
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap_or_default()
    });
    (r.acked.len() as f64 / t.elapsed().as_secs_f64(), r)
}

/// The peak goodput of [`PEAK_WORKERS`] closed-loop clients, then ten times as many clients:
/// the goodput must stay at least [`GOODPUT_SHARE`] of the peak, every request gets an answer
/// (a digest or a `503` try-later), and a legitimate paced client keeps a bounded p99.
fn overload(secs: u64) -> anyhow::Result<Row> {
    let (_dir, mut d) = fresh()?;
    let (peak, _) = goodput(d.addr, PEAK_WORKERS, secs.min(5), 4_000_000);
    let (peak2, _) = goodput(d.addr, 2 * PEAK_WORKERS, secs.min(5), 4_100_000);
    let peak = peak.max(peak2);
    let ((under, r), legit_r) = std::thread::scope(|s| {
        let h = s.spawn(|| goodput(d.addr, 10 * PEAK_WORKERS, secs, 4_200_000));
        let l = legit(d.addr, secs, 4_300_000);
        (h.join().unwrap_or((0.0, Default::default())), l)
    });
    let answered = r.acked.len() as u64 + r.refused.values().sum::<u64>();
    let mut row = Row::new("abuse: 10x overload", answered + r.unanswered);
    row.survived = answered;
    let mut lat = legit_r.latencies;
    let p99 = percentile(&mut lat, 99.0);
    let mut all_lat = r.latencies;
    row.note = format!(
        "peak goodput {peak:.0} digests/s ({PEAK_WORKERS} or {} closed-loop clients), then {} \
         closed-loop clients for {secs} s: goodput {under:.0}/s ({:.0}% of peak), refused {:?}, \
         unanswered {}, overload p99 {}; a paced legitimate client: p99 {}",
        2 * PEAK_WORKERS,
        10 * PEAK_WORKERS,
        100.0 * under / peak.max(1.0),
        r.refused,
        r.unanswered,
        ms(percentile(&mut all_lat, 99.0)),
        ms(p99),
    );
    if under < GOODPUT_SHARE * peak {
        failure(
            &mut row,
            format!("goodput below {:.0}% of peak", GOODPUT_SHARE * 100.0),
        );
    }
    if p99 > LEGIT_P99_BOUND || lat.is_empty() || r.bad_answers > 0 {
        failure(
            &mut row,
            format!("legitimate client p99 above {LEGIT_P99_BOUND:?}"),
        );
    }
    if let Err(e) = healthy(&mut d) {
        failure(&mut row, e);
    }
    Ok(row)
}

// ---- fuzzed requests -----------------------------------------------------------------------

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH", "CONNECT", "G\u{1}T",
];

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    (0..rng.gen_range(0..max)).map(|_| rng.gen()).collect()
}

fn random_path(rng: &mut StdRng) -> String {
    let hex: String = (0..rng.gen_range(0..200))
        .map(|_| char::from(b"0123456789abcdefABCDEFxz%/."[rng.gen_range(0..27)]))
        .collect();
    match rng.gen_range(0..10) {
        0 => "/digest".into(),
        1 => format!("/timestamp/{hex}"),
        2 => format!("/status/{hex}"),
        3 => "/".into(),
        4 => "/tip".into(),
        5 => format!("/{}", "a/".repeat(rng.gen_range(0..3000))),
        6 => format!("/timestamp/{}", "0".repeat(rng.gen_range(0..20_000))),
        7 => format!("/%{:02x}%{}", rng.gen::<u8>(), hex),
        8 => format!("http://x{hex}"),
        _ => String::from_utf8_lossy(&random_bytes(rng, 100)).replace(['\r', '\n', ' '], "_"),
    }
}

/// One fuzzed request: a method, a path, headers and a body, each valid, odd or broken.
fn fuzzed_request(rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_bool(0.05) {
        return random_bytes(rng, 2000);
    }
    let method = METHODS[rng.gen_range(0..METHODS.len())];
    let path = random_path(rng);
    let max_body = if rng.gen_bool(0.1) { 100_000 } else { 80 };
    let body = random_bytes(rng, max_body);
    let mut head = format!("{method} {path} HTTP/1.{}\r\n", rng.gen_range(0..2));
    if rng.gen_bool(0.9) {
        head.push_str("Host: x\r\n");
    }
    let declared = match rng.gen_range(0..6) {
        0 => body.len().to_string(),
        1 => (body.len() + rng.gen_range(1..10)).to_string(),
        2 => "-1".into(),
        3 => "99999999999999999999".into(),
        4 => format!("{}, {}", body.len(), body.len() + 1),
        _ => String::new(),
    };
    if !declared.is_empty() {
        head.push_str(&format!("Content-Length: {declared}\r\n"));
    }
    if rng.gen_bool(0.1) {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    if rng.gen_bool(0.2) {
        let name: String = (0..rng.gen_range(1..40))
            .map(|_| char::from(rng.gen_range(33u8..127)))
            .filter(|c| *c != ':')
            .collect();
        head.push_str(&format!(
            "{name}: {}\r\n",
            "v".repeat(rng.gen_range(0..20_000))
        ));
    }
    if rng.gen_bool(0.3) {
        head.push_str("Accept: application/json\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(&body);
    if rng.gen_bool(0.1) {
        let cut = rng.gen_range(0..req.len());
        req.truncate(cut);
    }
    req
}

/// Sends `req`, half-closes, and waits for an answer or a close: `false` on a hang.
fn answered_or_closed(addr: SocketAddr, req: &[u8]) -> Result<bool, std::io::Error> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(FUZZ_HANG))?;
    s.set_write_timeout(Some(FUZZ_HANG))?;
    // The server may answer and close before reading everything (a reset): that is an answer.
    let _ = s.write_all(req);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Ok(false)
            }
            Err(_) => return Ok(true),
        }
    }
}

/// `n` fuzzed requests from 4 clients, each on its own connection: every one answered or closed
/// within [`FUZZ_HANG`], otsd alive and panic-free afterwards.
fn fuzzed(seed: u64, n: u64) -> anyhow::Result<Row> {
    let (_dir, mut d) = fresh()?;
    let addr = d.addr;
    let next = AtomicU64::new(0);
    let hangs = AtomicU64::new(0);
    let first = std::sync::Mutex::new(None);
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..4u64 {
            let (next, hangs, first) = (&next, &hangs, &first);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ 0xf0 ^ w);
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let req = fuzzed_request(&mut rng);
                    if !matches!(answered_or_closed(addr, &req), Ok(true)) {
                        hangs.fetch_add(1, Ordering::Relaxed);
                        otsd::sync::lock(first).get_or_insert_with(|| {
                            String::from_utf8_lossy(&req[..req.len().min(200)]).into_owned()
                        });
                    }
                }
            });
        }
    });
    let hangs = hangs.load(Ordering::Relaxed);
    let mut row = Row::new("abuse: fuzzed requests (HTTP path)", n);
    row.survived = n - hangs;
    row.note = format!(
        "random methods, paths (hex, percent-escapes, 20k-byte and deep paths), headers \
         (conflicting, negative and huge Content-Length, chunked, 20k-byte values) and bodies \
         (up to 100 kB, truncated) from 4 clients against a live otsd, {:.0} requests/s; {hangs} \
         hangs; otsd alive and panic-free afterwards",
        n as f64 / t.elapsed().as_secs_f64()
    );
    if let Some(f) = otsd::sync::lock(&first).take() {
        row.note.push_str(&format!("; FIRST FAILURE: {f:?}"));
    }
    if let Err(e) = healthy(&mut d) {
        failure(&mut row, e);
    }
    Ok(row)
}
