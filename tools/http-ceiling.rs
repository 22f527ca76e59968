//! The HTTP ceiling of this machine, for reading otsd's figures: a bare warp server whose
//! `POST /digest` answers at once with 120 bytes (no aggregation, no log, no fsync).
//!
//! `target/release/http-ceiling [PORT]` (default 14791), then drive it like otsd, e.g.
//! `wrk -t2 -c256 -d10s -s tools/wrk-digest.lua http://127.0.0.1:14791` (add
//! `-H "Connection: close"` for a new connection per request). otsd cannot beat these numbers.
use warp::Filter;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(14791);
    let digest = warp::post()
        .and(warp::path!("digest"))
        .and(warp::body::content_length_limit(64))
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| {
            let mut answer = vec![0xf0u8; 120];
            answer[0] = body.len() as u8;
            warp::http::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(answer)
                .unwrap_or_default()
        });
    println!("bare warp POST /digest on 127.0.0.1:{port}");
    warp::serve(digest).run(([127, 0, 0, 1], port)).await;
}
