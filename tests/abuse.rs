//! Slow, idle and abusive clients get clear errors or are disconnected, and never stop the
//! calendar from serving others.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is a failed test"
)]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{new_calendar, post_digest, Otsd};

/// True once the server has closed `s` (EOF or reset), without blocking.
fn closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn ten_thousand_idle_connections_are_closed_and_others_are_served() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..10_000)
        .map(|i| {
            TcpStream::connect(otsd.addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    let opened = started.elapsed();
    let r = post_digest(otsd.addr, &[42u8; 32]);
    assert_eq!(r.status, 200, "served while 10k idle connections are open");

    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed() - opened));
    let still_open = idle.iter_mut().map(closed).filter(|c| !c).count();
    assert_eq!(
        still_open, 0,
        "idle sockets still open 10 s after they were opened (opening took {opened:?})"
    );
    assert_eq!(post_digest(otsd.addr, &[43u8; 32]).status, 200);
    otsd.stop();
}

#[test]
fn slow_headers_and_slow_bodies_are_cut_off() {
    let dir = new_calendar();
    let otsd = Otsd::start(&dir.path().join("calendar"), &[]);
    let mut slow_head = TcpStream::connect(otsd.addr).unwrap();
    slow_head
        .write_all(b"POST /digest HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(otsd.addr).unwrap();
    slow_body
        .write_all(b"POST /digest HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n")
        .unwrap();

    let started = Instant::now();
    let mut body_answer = Vec::new();
    let (mut head_closed, mut body_closed) = (None, None);
    while started.elapsed() < Duration::from_secs(12)
        && (head_closed.is_none() || body_closed.is_none())
    {
        // Trickle one byte a second into each, as a slowloris client does.
        if head_closed.is_none() && (slow_head.write_all(b"X").is_err() || closed(&mut slow_head)) {
            head_closed = Some(started.elapsed());
        }
        if body_closed.is_none() {
            let _ = slow_body.write_all(b"Y");
            slow_body.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1024];
            match slow_body.read(&mut buf) {
                Ok(0) => body_closed = Some(started.elapsed()),
                Ok(n) => body_answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => body_closed = Some(started.elapsed()),
            }
        }
        assert_eq!(
            post_digest(otsd.addr, &[7u8; 20]).status,
            200,
            "others are served meanwhile"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let head_closed = head_closed.expect("a slowloris header was never cut off");
    assert!(
        head_closed <= Duration::from_secs(8),
        "slow headers cut off after {head_closed:?}"
    );
    let answer = common::parse(&body_answer).expect("a slow body gets an answer");
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (408, "body too slow")
    );
    otsd.stop();
}
