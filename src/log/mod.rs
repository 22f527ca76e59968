//! The event log: segmented, append-only, CRC-checked, hash-chained and HMAC-chained.
//!
//! The format is specified in `log-format/README.md`; this module mirrors it. The log stores opaque
//! events (byte strings) in batches; one batch is one record, one group commit writes many records
//! with one write and one `fdatasync`.
//!
//! - [`record`]: record framing (named offsets), encoding and CRC-checked parsing.
//! - [`segment`]: segment names, header, seal payload, and the per-segment [`segment::Verifier`].
//! - [`chain`]: [`LogKey`] and the public hash / HMAC tag chain step.
//! - [`scan`]: walking a segment and deciding torn tail versus damage.
//! - [`durable`]: [`DurableEnd`], where the durable part ends (what `GET /log/` may serve).
//! - [`writer`]: the single [`Writer`]; [`handle`]: [`WriterHandle`], the writer on its own thread.
//! - [`recovery`]: what opening for writing repairs ([`Recovery`]).
//! - [`splice`]: checking one candidate record at a time, to rebuild a log from several copies.
//! - [`reader`]: [`Reader`] (whole-log verification and iteration) and [`Tail`] (following).
//! - [`storage`]: the writer's I/O traits, the real [`FsStorage`] and the test [`FaultStorage`].
//! - [`atomic`]: whole-file tmp+fsync+rename writes for the files beside the log.
//! - [`mmap`]: read-only maps of sealed segments, the one module with `unsafe`.
//! - [`progress`]: [`Progress`] reports of long reads (events, rate), for the operator tools.
//!
//! Guarantees: a batch acknowledged by [`Writer::append_batches`] or [`WriterHandle::submit`] is
//! durable and survives a crash intact; a failed write or sync poisons the writer; damage is never
//! skipped: it is an error naming segment and offset, except a torn tail of the active segment,
//! which opening for writing truncates (logged).
pub mod atomic;
pub mod chain;
pub mod durable;
pub mod error;
pub mod handle;
pub mod lookup;
pub mod mmap;
pub mod progress;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod scan;
pub mod segment;
pub mod splice;
pub mod storage;
pub mod writer;

pub use chain::{ChainState, Head, LogKey};
pub use durable::{DurableEnd, EndPosition};
pub use error::{Corruption, LogError};
pub use handle::{Ack, Submitter, WriterHandle, WriterState};
pub use progress::Progress;
pub use reader::{Reader, Tail, VerifiedSegment};
pub use recovery::Recovery;
pub use storage::{FaultStorage, Faults, FsStorage, Storage, StorageFile, SyncLater, Syncer};
pub use writer::{SeqRange, Writer, WriterOptions};
