//! Bitcoin Core at the edge: the one place that builds an RPC client and the one place that
//! launches a regtest node.
//!
//! - [`rpc`]: the function [`rpc::client`] (credentials from the URL or a cookie file, a timeout on every call)
//!   and [`rpc::redact`] (URLs in messages never show a password). Used by the stamper and by
//!   `otsctl verify --btc-rpc`.
//! - [`regtest`]: [`regtest::RegtestNode`], a throw-away `bitcoind -regtest` in a temporary
//!   datadir on free loopback ports, stopped (then killed) when dropped. Used by `otsd --dev` and
//!   by the tests' `common::bitcoind`.
pub mod discover;
pub mod regtest;
pub mod rpc;
