//! Pure Bitcoin-anchoring facts, needed by both the read side ([`crate::projection`]) and the
//! [`crate::stamper`]; they live below both so that neither imports the other. Nothing here does I/O.
//!
//! - [`state`]: the stamper's knowledge as a pure fold over its log events (cycles of replace-by-fee
//!   transactions, confirmations, the recent best chain, reorgs).
//! - [`proof`]: the shape of a complete proof (commitment -> tip -> txid -> block Merkle root ->
//!   attestation), the stamping tip over commitments and log head, and the block Merkle root.
//! - [`tip`]: the Merkle tip over raw pending commitments that `GET /tip` answers.
pub mod proof;
pub mod state;
pub mod tip;
