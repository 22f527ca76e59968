//! otsd as a drop-in for the Python otsd (issue 11): the Python systemd unit's command line, the
//! Python flags with their meanings, node discovery through `~/.bitcoin/bitcoin.conf` and the
//! cookie file against a real regtest node, the Python info fields and the Lightning invoice, the
//! debug file rotated as Python's, and `GET /experimental/backup/<N>` mirrored by the real Python
//! `otsd-backup` program (`../shared/peers/opentimestamps-server`, under `$OTS_PYTHON`).
//!
//! Needs `$BITCOIND` and `$OTS_PYTHON` (set by tools/test.sh); fails loudly without them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::bitcoind::{Bitcoind, RPC_PASSWORD, RPC_USER};
use common::pypeer::shared_path;
use common::{fund_stamper, get, post_digest, required_env, wait_for, Otsd};

/// The arguments of the Python unit's `ExecStart`, after the program.
fn python_unit_args() -> Vec<String> {
    let unit = std::fs::read_to_string(shared_path(
        "peers/opentimestamps-server/contrib/systemd/otsd.service",
    ))
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the Python unit has an ExecStart");
    let mut words = line.split_whitespace();
    let program = words.next().unwrap();
    assert!(program.ends_with("/otsd"), "{program}");
    words.map(str::to_owned).collect()
}

/// A private HOME holding `~/.otsd/calendar` (made by `otsctl init`, as the Python README's
/// default calendar path) and, if given, `~/.bitcoin/bitcoin.conf`.
fn python_home(dir: &Path, bitcoin_conf: Option<&str>) -> PathBuf {
    let home = dir.join("home");
    let cal = home.join(".otsd/calendar");
    std::fs::create_dir_all(home.join(".otsd")).unwrap();
    let (ok, out, err) = common::otsctl(&[
        "init",
        cal.to_str().unwrap(),
        "--uri",
        common::URI,
        "--donation-addr",
        common::DONATION,
    ]);
    assert!(ok, "otsctl init: {out}{err}");
    if let Some(conf) = bitcoin_conf {
        std::fs::create_dir_all(home.join(".bitcoin")).unwrap();
        std::fs::write(home.join(".bitcoin/bitcoin.conf"), conf).unwrap();
    }
    home
}

fn info_json(addr: std::net::SocketAddr) -> serde_json::Value {
    let r = get(addr, "/", "Accept: application/json\r\n");
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

/// The Python unit's `ExecStart` (`otsd -v`) starts otsd unchanged: default calendar
/// `~/.otsd/calendar`, `localhost:14788`, mainnet, the node found through bitcoin.conf. With no
/// node there, digests are still accepted and the info page says loudly that the node cannot be
/// reached; the unit's `KillSignal=SIGINT` stops it cleanly.
#[test]
fn the_python_systemd_unit_s_command_line_starts_otsd_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // A node that is not there (a closed port) and has not written its cookie: otsd keeps
    // trying the cookie file, as a node still starting would write it.
    let closed = common::free_port();
    let conf = format!("rpcconnect=127.0.0.1\nrpcport={closed}\n");
    let home = python_home(dir.path(), Some(&conf));
    let args = python_unit_args();
    assert_eq!(args, ["-v"], "the unit this test was written for");
    let mut child = Command::new(env!("CARGO_BIN_EXE_otsd"))
        .args(&args)
        .env("HOME", &home)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:14788".parse().unwrap();
    wait_for("otsd on the Python default port 14788", 60, || {
        if let Ok(Some(s)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("otsd exited with {s}:\n{err}");
        }
        std::net::TcpStream::connect(addr).ok()
    });
    let r = post_digest(addr, &[7; 32]);
    assert_eq!(r.status, 200, "intake works without a node: {}", r.text());
    let info = wait_for("the info page to report the missing node", 30, || {
        let v = info_json(addr);
        let alarms = v["stamping"]["alarms"].as_array().unwrap().clone();
        alarms.iter().any(|a| a == "node_unreachable").then_some(v)
    });
    assert_eq!(info["network"], "mainnet");
    assert_eq!(info["pending_commitments"], 1);
    assert!(
        info["stamping"]["stamper_error"]
            .as_str()
            .unwrap()
            .contains("node unreachable"),
        "{info}"
    );
    let page = get(addr, "/", "").text();
    assert!(page.contains("id=\"alarms\""), "the alarm banner is shown");
    assert!(page.contains("node_unreachable"));
    assert!(
        page.contains("id=\"node-unreachable\">The Bitcoin node cannot be reached"),
        "said in words too"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SIGINT: {}\n{err}", out.status);
    assert!(
        err.contains("bitcoin.conf"),
        "the node's source is logged: {err}"
    );
}

/// `otsd --btc-regtest` with every Python flag and no `--btc-rpc` finds the regtest node through
/// `$HOME/.bitcoin/bitcoin.conf` and the network's cookie file (here the node's real credentials
/// written as a cookie), stamps, honours `--max-pending` per transaction, shows the Python info
/// fields and the Lightning invoice, and rotates its debug file as Python's handler.
#[test]
fn python_flags_and_bitcoin_conf_discovery_stamp_on_regtest() {
    let node = Bitcoind::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "# as an operator writes it\nrpcconnect=127.0.0.1\nrpcport={} # regtest\nserver=1\n",
        node.rpc_port
    );
    let home = python_home(dir.path(), Some(&conf));
    std::fs::create_dir_all(home.join(".bitcoin/regtest")).unwrap();
    std::fs::write(
        home.join(".bitcoin/regtest/.cookie"),
        format!("{RPC_USER}:{RPC_PASSWORD}"),
    )
    .unwrap();
    let invoice = "lnbc1pjexampleinvoicewithoutamount0qqqqqq";
    std::fs::write(home.join(".otsd/ln-invoice"), format!("{invoice}\n")).unwrap();
    let cal = home.join(".otsd/calendar");
    let port = common::free_port().to_string();
    let home_s = home.to_str().unwrap();
    let python_flags = [
        "-v",
        "--debug-file",
        "~/.otsd/debug.log",
        "--debug-file-max-size",
        "3000",
        "--debug-file-backup-count",
        "2",
        "--debug-file-gmtime",
        "--rpc-port",
        &port,
        "--rpc-address",
        "127.0.0.1",
        "--lightning-invoice-file",
        "~/.otsd/ln-invoice",
        "--explorer-url",
        "https://explorer.example",
        "--max-pending",
        "2",
        "--btc-min-relay-feerate",
        "1.5",
        "--btc-conf-target",
        "2",
        "--btc-min-confirmations",
        "2",
        "--btc-min-tx-interval",
        "0",
        "--btc-max-fee",
        "0.001",
        "--btc-regtest",
    ];
    // Three rounds before the stamper can pay: its first transaction may take only two.
    let mut flags: Vec<&str> = python_flags.to_vec();
    flags.extend(["--btc-poll-interval-ms", "100"]);
    let otsd = Otsd::start_discovering(&cal, &flags, &[("HOME", home_s)]);
    let a = otsd.addr;
    for i in 0..3u8 {
        assert_eq!(post_digest(a, &[i; 32]).status, 200);
    }
    fund_stamper(&node, &cal);
    let first = wait_for("a first stamping transaction", 60, || {
        let v = info_json(a);
        v["most_recent_tx"].is_string().then_some(v)
    });
    assert_eq!(
        (
            &first["stamping"]["in_flight"]["first_round"],
            &first["stamping"]["in_flight"]["last_round"]
        ),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "--max-pending 2 caps the transaction: {first}"
    );
    assert_eq!(first["prior_versions"], 0);
    assert_eq!(first["address"], common::DONATION);
    assert_eq!(first["explorer_url"], "https://explorer.example");
    assert_eq!(first["lightning_invoice"], invoice);
    assert!(
        first["fees_in_last_week"].is_string(),
        "Python's \"1,234\" form"
    );
    // Mine it (1 of 2 confirmations), then the third round goes into the next transaction.
    node.mine(1);
    let v = wait_for("the round left out to be stamped next", 60, || {
        let v = info_json(a);
        (v["stamping"]["in_flight"]["first_round"] == 2).then_some(v)
    });
    assert_eq!(v["txs_waiting_for_confirmation"], 1, "{v}");
    let txs = v["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 1, "{v}");
    assert_eq!(txs[0]["confirmations"], 1);
    assert!(
        txs[0]["fee"].as_i64().unwrap() < 0,
        "negative, as listtransactions"
    );
    assert_eq!(v["block_height"].as_u64(), Some(node.height()));
    let best: String = node.rpc("getbestblockhash", &[]);
    assert_eq!(v["best_block"], best);
    assert_eq!(v["most_recent_tx"], v["stamping"]["in_flight"]["txid"]);
    assert_eq!(
        v["time_between_transactions"], "168.0 hours",
        "one transaction mined this week, as Python computes it"
    );
    let page = get(a, "/", "").text();
    let link = format!(
        "https://explorer.example/tx/{}",
        txs[0]["txid"].as_str().unwrap()
    );
    assert!(
        page.contains(&link),
        "the mined tx linked through --explorer-url"
    );
    node.mine(2);
    wait_for("every proof complete", 30, || {
        (info_json(a)["pending_commitments"] == 0).then_some(())
    });
    let page = get(a, "/", "").text();
    assert!(
        page.contains("id=\"lightning-qr\""),
        "the invoice's QR code"
    );
    assert!(page.contains(&format!("lightning:{invoice}")));
    // Enough log lines to rotate: -v logs every request at debug level.
    for _ in 0..200 {
        get(a, "/tip", "");
    }
    otsd.stop();
    let log = home.join(".otsd/debug.log");
    let rotated: Vec<PathBuf> = (1..=3)
        .map(|i| PathBuf::from(format!("{}.{i}", log.display())))
        .collect();
    assert!(log.exists() && rotated[0].exists() && rotated[1].exists());
    assert!(
        !rotated[2].exists(),
        "--debug-file-backup-count 2 keeps two"
    );
    for f in [&log, &rotated[0], &rotated[1]] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len < 3000, "{} is {len} bytes", f.display());
    }
    let text = std::fs::read_to_string(&rotated[1]).unwrap();
    let line = text.lines().next().unwrap();
    // Python's asctime: `2026-12-02 14:11:49,123`.
    let stamp: Vec<char> = line.chars().take(23).collect();
    let shape: String = stamp
        .iter()
        .map(|c| if c.is_ascii_digit() { 'D' } else { *c })
        .collect();
    assert_eq!(shape, "DDDD-DD-DD DD:DD:DD,DDD", "{line}");
}

/// `GET /experimental/backup/<N>` as the Python server: the real Python `otsd-backup` mirrors a
/// 1000-round chunk from otsd, checks it against the node, and then serves the same proofs as
/// otsd; the incomplete next chunk is a 404 with Python's headers.
#[test]
fn otsd_backup_mirrors_otsd_and_serves_the_same_proofs() {
    let python = required_env("OTS_PYTHON");
    let node = Bitcoind::start();
    let dir = common::new_calendar();
    let cal = dir.path().join("calendar");
    let mut flags: Vec<String> = node.stamper_args();
    flags.extend(["--btc-min-confirmations".into(), "2".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &flags);
    let a = otsd.addr;
    // 1000 rounds, one digest each (each POST waits for its round), before the stamper can pay:
    // one transaction covers them all.
    let mut commitments = Vec::new();
    for i in 0..1005u32 {
        let digest = {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            d
        };
        let r = post_digest(a, &digest);
        assert_eq!(r.status, 200);
        commitments.push(common::commitment_of(&digest, &r.body));
    }
    let r = get(a, "/experimental/backup/0", "");
    assert_eq!(r.status, 404, "not complete yet");
    fund_stamper(&node, &cal);
    wait_for("the stamping transaction", 60, || {
        info_json(a)["most_recent_tx"].as_str().map(str::to_owned)
    });
    node.mine(2);
    let chunk = wait_for("chunk 0 to be complete", 60, || {
        let r = get(a, "/experimental/backup/0", "");
        (r.status == 200).then_some(r)
    });
    assert_eq!(
        chunk.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        chunk.header("cache-control"),
        Some("public, max-age=31536000")
    );
    let cached = std::fs::read(cal.join("backup_cache/000/000000")).unwrap();
    assert_eq!(cached, chunk.body, "cached under Python's name");
    for (path, why) in [
        (
            "/experimental/backup/1",
            "rounds 1000.. are not all complete",
        ),
        ("/experimental/backup/-1", "negative"),
        ("/experimental/backup/x", "not a number"),
        (
            "/experimental/backup/0?x",
            "a query makes Python's int() fail",
        ),
    ] {
        let r = get(a, path, "");
        assert_eq!(
            (r.status, r.header("cache-control"), r.body.len()),
            (404, Some("public, max-age=60"), 0),
            "{path}: {why}"
        );
    }
    assert_eq!(get(a, "/experimental/backup/+0", "").body, chunk.body);

    // The real mirror, its node found through bitcoin.conf in its HOME.
    let home = dir.path().join("mirror-home");
    std::fs::create_dir_all(home.join(".bitcoin")).unwrap();
    std::fs::write(
        home.join(".bitcoin/bitcoin.conf"),
        format!(
            "rpcconnect=127.0.0.1\nrpcport={}\nrpcuser={RPC_USER}\nrpcpassword={RPC_PASSWORD}\n",
            node.rpc_port
        ),
    )
    .unwrap();
    let base = dir.path().join("backups");
    let mirror_port = common::free_port();
    let log = std::fs::File::create(dir.path().join("otsd-backup.log")).unwrap();
    let mut mirror = Command::new(&python)
        .arg(shared_path("peers/opentimestamps-server/otsd-backup.py"))
        .args(["-c", &otsd.url(), "--btc-regtest", "-p"])
        .arg(&base)
        .arg("--debug-file")
        .arg(base.join("debug.log"))
        .args(["--rpc-address", "127.0.0.1", "--rpc-port"])
        .arg(mirror_port.to_string())
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn otsd-backup");
    let up_to = base.join(format!("{}", a));
    let mirror_log = || std::fs::read_to_string(dir.path().join("otsd-backup.log")).unwrap();
    wait_for("otsd-backup to import chunk 0", 120, || {
        if let Ok(Some(s)) = mirror.try_wait() {
            panic!("otsd-backup exited with {s}:\n{}", mirror_log());
        }
        let done = std::fs::read_to_string(&up_to).ok()?;
        (done.trim() == "0").then_some(())
    });
    let maddr: std::net::SocketAddr = format!("127.0.0.1:{mirror_port}").parse().unwrap();
    for (i, c) in commitments.iter().enumerate() {
        let path = format!("/timestamp/{}", hex::encode(c));
        let ours = get(a, &path, "");
        let theirs = get(maddr, &path, "");
        if i < 1000 {
            assert_eq!(ours.status, 200, "round {i}");
            assert_eq!(theirs.status, 200, "round {i}: {}", mirror_log());
            assert_eq!(theirs.body, ours.body, "round {i}: the same proof");
        } else {
            assert_eq!(theirs.status, 404, "round {i} is not in chunk 0");
        }
    }
    let _ = mirror.kill();
    let _ = mirror.wait();
    // The mirror asked for chunk 1 next and got Python's 404.
    std::thread::sleep(Duration::from_millis(10));
    otsd.stop();
}

/// The debug file rotates as Python's own `logging.handlers.RotatingFileHandler` (run under
/// `$OTS_PYTHON`): the same records, written by both with the same limits, leave the same files
/// with the same contents (records shorter than the limit: for a longer one into an empty file,
/// Python 3.11 rotates the empty file away and otsd does not, see `telemetry::rotate`).
#[test]
fn the_debug_file_rotates_as_python_s_rotating_file_handler() {
    use std::io::Write;
    let python = required_env("OTS_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let varied: Vec<String> = (0..60)
        .map(|i| format!("record {i} {}", "x".repeat((i * 7) % 23)))
        .collect();
    // Ten bytes a line: the size reaches the limit exactly (Python rotates at `>=`).
    let even: Vec<String> = (0..40).map(|i| format!("line {:04}", i)).collect();
    let cases = [(100u64, 3u32), (64, 1), (0, 2), (100, 0), (1000, 2)];
    for (records, (max_bytes, backups)) in cases
        .iter()
        .map(|c| (&varied, *c))
        .chain([(&even, (100, 2)), (&even, (50, 5))])
    {
        let case = format!("{max_bytes}-{backups}-{}", records.len());
        let ours = dir.path().join(format!("ours-{case}"));
        let theirs = dir.path().join(format!("py-{case}"));
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::create_dir_all(&theirs).unwrap();
        let rotation = otsd::telemetry::Rotation {
            max_bytes,
            backup_count: backups,
        };
        let mut f = otsd::telemetry::RotatingFile::open(&ours.join("debug.log"), rotation).unwrap();
        for r in records {
            f.write_all(format!("{r}\n").as_bytes()).unwrap();
        }
        drop(f);
        let script = format!(
            "import logging, logging.handlers, sys\n\
             h = logging.handlers.RotatingFileHandler(sys.argv[1], maxBytes={max_bytes}, backupCount={backups})\n\
             h.setFormatter(logging.Formatter('%(message)s'))\n\
             log = logging.getLogger('t'); log.addHandler(h); log.setLevel(logging.INFO)\n\
             for line in sys.stdin.read().splitlines(): log.info(line)\n"
        );
        let mut child = Command::new(&python)
            .args(["-c", &script])
            .arg(theirs.join("debug.log"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(records.join("\n").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let listing = |d: &Path| {
            let mut names: Vec<(String, String)> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap(),
                    )
                })
                .collect();
            names.sort();
            names
        };
        let ours = listing(&ours);
        assert_eq!(ours, listing(&theirs), "max {max_bytes}, backups {backups}");
        if max_bytes == 100 && backups == 3 {
            assert_eq!(ours.len(), 4, "the test rotates: {ours:?}");
        }
    }
}
