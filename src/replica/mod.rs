//! Copies of the log kept elsewhere, and bringing what they hold back.
//!
//! - [`mirror`]: the mirror format (segments plus an `INDEX` of their lengths and hashes) and its
//!   readers, from a directory or over plain HTTP.
//! - [`follow`]: following a live log over a small source abstraction (`otsd --mirror-of`):
//!   verify, store, fold.
//! - [`http`]: the small HTTP/1.1 `GET` client the mirror reader uses (bounded, with timeouts).
//! - [`publish`]: the log served read-only over HTTP (`GET /log/`), up to its durable end.
//! - [`role`]: primary or mirror: the single-writer guard and `otsctl promote`.
//! - [`ship`]: copy the log's segments into a mirror directory, incrementally (reads only).
//! - [`bucket`]: a mirror in object storage (S3): its layout, the client, and reading it back.
//! - [`bucket_ship`]: shipping the log into a bucket, verified, step by step; [`continuous`]
//!   runs those steps inside otsd (`--ship-to`).
//! - [`merge`]: the longest authentic log from genesis, record by record, out of a local log and
//!   an untrusted replica.
//! - [`recover`]: rebuild a lost or damaged log from a replica through [`merge`], moving the old
//!   log aside.
//! - [`readmit`]: put commitments that clients hold back after a loss, if their MAC verifies.
pub mod bucket;
pub mod bucket_ship;
pub mod continuous;
pub mod follow;
pub mod http;
pub mod merge;
pub mod mirror;
pub mod publish;
pub mod readmit;
pub mod recover;
pub mod role;
pub mod ship;
