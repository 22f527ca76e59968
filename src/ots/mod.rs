//! The OpenTimestamps wire format, byte-compatible with python-opentimestamps.
//!
//! Imports nothing else of ours, so proofs can be read and written anywhere (server, tools,
//! tests). Layout:
//!
//! - [`ser`]: varuint / varbytes primitives and the bounded [`ser::Reader`].
//! - [`op`]: operations, their limits and python's ordering.
//! - [`attestation`]: pending, block-header and unknown attestations.
//! - [`timestamp`]: the proof tree and its (de)serialization with a depth limit.
//! - [`file`]: detached `.ots` files.
//! - [`path`]: writing linear proofs without building a tree.
//! - [`merkle`]: round Merkle trees with python's pairing, paths without per-leaf allocation.
//! - [`answer`]: the calendar's answer to `POST /digest`.
//! - [`error`]: decode, encode and operation errors.

pub mod answer;
pub mod attestation;
pub mod error;
pub mod file;
pub mod merkle;
pub mod op;
pub mod path;
pub mod ser;
pub mod timestamp;

pub use attestation::Attestation;
pub use error::{DecodeError, EncodeError, OpError};
pub use file::DetachedTimestampFile;
pub use merkle::{MerkleTree, Side, Step};
pub use op::Op;
pub use timestamp::Timestamp;
