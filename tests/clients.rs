//! Interop with the real OpenTimestamps clients: the `ots` command (PyPI opentimestamps-client),
//! javascript-opentimestamps (npm) and python-opentimestamps parsing our answers. The test command
//! (tools/test.sh) installs them and sets OTS_BIN, OTS_PYTHON and OTS_JS_DIR; without them these
//! tests fail rather than skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::process::Command;

use common::{post_digest, repo_path, required_env, run, served_calendar, OtsClient};

#[test]
fn ots_client_stamps_and_sees_pending() {
    let (dir, otsd) = served_calendar();
    let ots = OtsClient::new(&dir.path().join("home"));
    let url = otsd.url();
    let proof = ots.stamp(&url, dir.path(), "hello.txt", b"Hello, calendar!\n");
    let proof = proof.to_str().unwrap();

    let (ok, info) = ots.run(&["info", proof]);
    assert!(ok, "ots info failed:\n{info}");
    assert!(
        info.contains(&format!("PendingAttestation('{url}')")),
        "info shows our pending attestation:\n{info}"
    );
    assert!(
        info.contains("append") && info.contains("sha256") && info.contains("prepend"),
        "{info}"
    );

    let (_, up) = ots.run(&["-l", &url, "upgrade", proof]);
    assert!(
        up.contains("Pending confirmation in Bitcoin blockchain"),
        "ots upgrade reports pending:\n{up}"
    );
    otsd.stop();
}

#[test]
fn javascript_client_stamps() {
    let js_dir = required_env("OTS_JS_DIR");
    let (dir, otsd) = served_calendar();
    let file = dir.path().join("js.txt");
    std::fs::write(&file, b"stamped from javascript-opentimestamps\n").unwrap();
    let (ok, out) = run(Command::new("node")
        .arg(repo_path("tests/js/stamp.js"))
        .arg(otsd.url())
        .arg(&file)
        .env("OTS_JS_DIR", &js_dir));
    assert!(ok, "javascript-opentimestamps could not stamp:\n{out}");
    assert!(
        out.contains(&otsd.url()),
        "the JS proof names our calendar:\n{out}"
    );
    assert!(dir.path().join("js.txt.ots").exists());
    otsd.stop();
}

#[test]
fn python_opentimestamps_verifies_a_thousand_answers() {
    let python = required_env("OTS_PYTHON");
    let (dir, otsd) = served_calendar();
    let addr = otsd.addr;
    let answers = common::in_parallel(8, 125, |w, i| {
        let len = 1 + (w * 125 + i) % 64;
        let digest: Vec<u8> = (0..len).map(|_| rand::random()).collect();
        let r = post_digest(addr, &digest);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::json!({"digest": hex::encode(&digest), "response": hex::encode(&r.body), "status": 200})
    });
    assert_eq!(answers.len(), 1000);
    let key = std::fs::read(dir.path().join("calendar/hmac-key")).unwrap();
    let doc =
        serde_json::json!({"hmac_key": hex::encode(key), "uri": otsd.url(), "answers": answers});
    let path = dir.path().join("answers.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (ok, out) = run(Command::new(&python)
        .arg(repo_path("tests/python/check_responses.py"))
        .arg(&path));
    assert!(
        ok && out.contains("1000 passed, 0 failed"),
        "python-opentimestamps check:\n{out}"
    );
    otsd.stop();
}
