//! contrib/nginx/otsd.conf in front of a real otsd, run by Debian's nginx (`$NGINX`, installed by
//! tools/setup-ops.sh): the real `ots` client stamps, upgrades and verifies through it against a
//! real `bitcoind -regtest`; caching follows otsd's Cache-Control; CORS, body limit and the
//! internal /metrics hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::bitcoind::Bitcoind;
use common::{commitment_of, free_port, get, post_digest, raw, required_env, wait_for, Otsd};

/// nginx running contrib/nginx/otsd.conf with its ports and paths substituted.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    /// SIGQUIT: nginx's graceful stop, in which the master also ends its workers.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(prefix: &Path, port: u16, upstream: SocketAddr) -> Nginx {
        let site = std::fs::read_to_string(common::repo_path("contrib/nginx/otsd.conf")).unwrap();
        let cache = prefix.join("cache");
        for d in ["cache", "tmp", "logs"] {
            std::fs::create_dir_all(prefix.join(d)).unwrap();
        }
        let site = substitute(
            &site,
            &[
                ("server 127.0.0.1:14788;", &format!("server {upstream};")),
                ("    listen [::]:80;\n", ""),
                ("listen 80;", &format!("listen 127.0.0.1:{port};")),
                ("/var/cache/nginx/otsd", cache.to_str().unwrap()),
            ],
        );
        std::fs::write(prefix.join("otsd.conf"), site).unwrap();
        let p = prefix.display();
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/logs/access.log;\n  client_body_temp_path {p}/tmp/body;\n  \
             proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  \
             uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  include {p}/otsd.conf;\n}}\n"
        );
        std::fs::write(prefix.join("nginx.conf"), main).unwrap();
        // nginx's workers run as an unprivileged user when started as root.
        make_world_writable(prefix);
        let nginx = required_env("NGINX");
        let conf = prefix.join("nginx.conf");
        let test = Command::new(&nginx)
            .args(["-t", "-p"])
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx -t");
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for("nginx to listen", 30, || {
            std::net::TcpStream::connect(addr).ok()
        });
        Nginx { child, addr }
    }
}

fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "contrib/nginx/otsd.conf no longer has {from:?}"
        );
        out = out.replace(from, to);
    }
    out
}

fn make_world_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = dir.to_path_buf();
    loop {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777));
        if !p.pop() || p.as_os_str().is_empty() || p == Path::new("/tmp") || p == Path::new("/") {
            break;
        }
    }
    for d in ["cache", "tmp", "logs"] {
        std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

#[test]
fn ots_client_stamps_and_upgrades_through_nginx() {
    let node = Bitcoind::start();
    let nginx_port = free_port();
    let url = format!("http://127.0.0.1:{nginx_port}");
    let dir = common::calendar_with_uri(&url);
    let cal = dir.path().join("calendar");
    common::fund_stamper(&node, &cal);
    let mut args: Vec<String> = node.stamper_args();
    args.extend([
        "--metrics-address".to_owned(),
        format!("127.0.0.1:{}", free_port()),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let otsd = Otsd::start(&cal, &args);
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(prefix.path(), nginx_port, otsd.addr);
    let n = nginx.addr;

    // A browser client's form-encoded POST: answered, with CORS headers.
    let digest = [0x42u8; 32];
    let answer = post_digest(n, &digest);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let commitment = commitment_of(&digest, &answer.body);
    let preflight = raw(n, b"OPTIONS /digest HTTP/1.1\r\nHost: x\r\nOrigin: https://example.org\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    // Body limit, internal endpoints.
    let big = raw(n, format!("POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{}", "a".repeat(4096)).as_bytes());
    assert_eq!(big.status, 413);
    assert_eq!(get(n, "/metrics", "").status, 403);
    assert_eq!(get(n, "/readyz", "").status, 200);

    // Pending answers are cached for otsd's max-age (60 s): the second is a cache hit.
    let path = format!("/timestamp/{}", hex::encode(&commitment));
    let first = get(n, &path, "");
    assert_eq!(
        (first.status, first.header("x-cache-status")),
        (404, Some("MISS"))
    );
    let second = get(n, &path, "");
    assert_eq!(
        (second.status, second.header("x-cache-status")),
        (404, Some("HIT")),
        "{}",
        second.text()
    );
    assert_eq!(second.header("cache-control"), Some("public, max-age=60"));

    // The real client: stamp through nginx; then a digest stamped after it, whose completion
    // (seen on otsd directly, so nothing is cached on the way) implies the client's.
    let ots = common::OtsClient::new(&dir.path().join("home"));
    let proof = ots.stamp(&url, dir.path(), "hello.txt", b"Hello through nginx\n");
    let fresh = [0x43u8; 32];
    let fresh_answer = post_digest(n, &fresh);
    assert_eq!(fresh_answer.status, 200);
    let fresh_commitment = commitment_of(&fresh, &fresh_answer.body);
    let fresh_path = format!("/timestamp/{}", hex::encode(&fresh_commitment));
    let complete = wait_for("the later digest's complete proof from otsd", 120, || {
        node.mine(1);
        let r = get(otsd.addr, &fresh_path, "");
        (r.status == 200).then_some(r)
    });
    let proof_s = proof.to_str().unwrap();
    let (ok, out) = ots.run(&["--btc-regtest", "-l", &url, "upgrade", proof_s]);
    assert!(
        ok && out.contains("Success"),
        "ots upgrade through nginx: {out}"
    );
    let node_url = node.url_with_auth();
    let (ok, out) = ots.verify_regtest(&node_url, proof_s);
    assert!(
        ok && out.contains("Success! Bitcoin block"),
        "ots verify: {out}"
    );

    // A complete proof is cached for a year.
    let first = get(n, &fresh_path, "");
    assert_eq!(
        (first.status, first.header("x-cache-status")),
        (200, Some("MISS"))
    );
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=31536000")
    );
    let again = get(n, &fresh_path, "");
    assert_eq!(
        (again.status, again.header("x-cache-status")),
        (200, Some("HIT"))
    );
    assert_eq!(again.body, complete.body);
    drop(nginx);
    otsd.stop();
}

/// A live mirror follows the primary through nginx's `/log/` (Range requests passed through,
/// never cached), and `otsctl recover` reads the same URL.
#[test]
fn a_mirror_follows_through_nginx() {
    let nginx_port = free_port();
    let url = format!("http://127.0.0.1:{nginx_port}");
    let dir = common::calendar_with_uri(&url);
    let cal = dir.path().join("calendar");
    let otsd = Otsd::start(&cal, &[]);
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(prefix.path(), nginx_port, otsd.addr);
    let mdir = tempfile::tempdir().unwrap();
    let log_url = format!("{url}/log/");
    let mirror = Otsd::start(
        mdir.path(),
        &["--mirror-of", &log_url, "--mirror-poll-ms", "20"],
    );
    for i in 0..50u8 {
        assert_eq!(post_digest(nginx.addr, &[i; 32]).status, 200);
    }
    let seq = |o: &Otsd| {
        let r = get(o.addr, "/", "Accept: application/json\r\n");
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["log_next_seq"].as_u64()
    };
    let want = seq(&otsd);
    wait_for("the mirror to follow through nginx", 30, || {
        (seq(&mirror) == want).then_some(())
    });
    let r = get(nginx.addr, "/log/segments.txt", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let name = r
        .text()
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let part = get(nginx.addr, &format!("/log/{name}"), "Range: bytes=0-7\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"OTSDLOG\0");
    // A lost primary rebuilt from the URL: its secrets, and the log read through nginx.
    let rebuilt = tempfile::tempdir().unwrap();
    for f in ["uri", "donation_addr", "hmac-key"] {
        std::fs::copy(cal.join(f), rebuilt.path().join(f)).unwrap();
    }
    let target = rebuilt.path().to_str().unwrap();
    let (ok, out, err) = common::otsctl(&["recover", target, "--from", &log_url, "--json"]);
    assert!(ok, "otsctl recover through nginx: {out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["next_seq"].as_u64(), want, "{report}");
    mirror.stop();
    otsd.stop();
}
