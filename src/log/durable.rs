//! [`DurableEnd`]: where the durable part of a log ends, shared between the one appender (the
//! writer thread, or a mirror's follower) and readers that must never see beyond it: the log
//! publisher behind `GET /log/` (by segment and offset) and the `--ship-to` shipper (by sequence
//! number).
use std::sync::{Arc, Mutex};

/// The active segment and the offset right after its last durable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndPosition {
    /// First sequence number of the segment the appender writes to (its file name).
    pub segment: u64,
    /// Bytes of that segment that are durable (header included).
    pub offset: u64,
    /// Sequence number the next event will get: every event before it is durable.
    pub next_seq: u64,
}

/// A shared, cloneable [`EndPosition`], updated only after an `fdatasync`.
#[derive(Debug, Clone, Default)]
pub struct DurableEnd(Arc<Mutex<EndPosition>>);

impl DurableEnd {
    pub fn new(at: EndPosition) -> DurableEnd {
        DurableEnd(Arc::new(Mutex::new(at)))
    }

    /// The position now.
    pub fn get(&self) -> EndPosition {
        *crate::sync::lock(&self.0)
    }

    /// Publishes a new position; call it only once the bytes before it are durable.
    pub fn set(&self, at: EndPosition) {
        *crate::sync::lock(&self.0) = at;
    }
}
