//! otsd: an OpenTimestamps calendar server on an append-only event log.
//!
//! # Layout
//!
//! - [`log`]: the segmented, memory-mapped, CRC-checked, HMAC- and hash-chained append-only log. It
//!   stores opaque event payloads and knows nothing of what they mean. Its format is specified in
//!   `log-format/README.md`.
//! - [`events`]: the event vocabulary (what the calendar writes to the log) and its encoding through
//!   [`log::codec`].
//! - [`ots`]: the OpenTimestamps wire format (operations, attestations, timestamps), the Merkle tree
//!   and the commitment MAC of the Python calendar. Imports nothing else of ours.
//! - [`calendar`]: the calendar directory (`uri`, `donation_addr`, `hmac-key`) and key derivation.
//! - [`aggregator`]: turns submitted digests into rounds (group commits) and answers them after fsync.
//! - [`projection`]: pure folds over the log: digest -> round -> commitment -> tx -> block, and
//!   their rebuildable checkpoint (fast start-up).
//! - [`http`]: the warp filters, handlers and the hyper server with timeouts and limits.
//! - [`dev`]: `otsd --dev`, a throw-away calendar on a regtest node for client developers.
//! - [`ctl`]: the operator tools behind `otsctl`: forensic `verify`, `inspect` and `replay` of the log,
//!   `ship` to a mirror, `recover` from an untrusted replica, and `readmit` of commitments clients
//!   hold after a loss.
//! - [`stamper`]: commits rounds into Bitcoin: a pure fold of its events and a pure decision policy
//!   (send, bump by RBF, wait, final, reorg), driven by a thin RPC driver.
#![deny(unsafe_code)]

pub mod aggregator;
pub mod calendar;
pub mod cli;
pub mod ctl;
pub mod dev;
pub mod events;
pub mod http;
pub mod log;
pub mod ots;
pub mod projection;
pub mod pycal;
pub mod server;
pub mod stamper;
pub mod telemetry;
