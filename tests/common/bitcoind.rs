//! A real `bitcoind -regtest` per test: the library's [`RegtestNode`] (its own temporary datadir,
//! free loopback ports, user/password RPC auth, a guaranteed shutdown when dropped) with
//! `-txindex=1`, retried starts, and the tests' helpers (mining, addresses, otsd flags).
//!
//! The binary comes from `$BITCOIND` (set by `tools/test.sh` from `tools/build-bitcoind.sh`). A test
//! that needs a node panics with a clear message when it is not set: a silently skipped Bitcoin test
//! would be a test that cannot fail.
#![allow(dead_code)]

use std::path::PathBuf;

use bitcoin::key::{CompressedPublicKey, Secp256k1};
use bitcoin::{Address, BlockHash, Network, PrivateKey};
use bitcoincore_rpc::RpcApi;
use otsd::bitcoind::regtest::{RegtestNode, RegtestOptions};

/// RPC credentials of every test node.
pub const RPC_USER: &str = "otsd-test";
pub const RPC_PASSWORD: &str = "otsd-test-password";
/// Attempts to start a node (a free port may be taken between probing and binding).
const START_ATTEMPTS: usize = 3;

/// A running regtest node (`rpc_port`, `p2p_port`, `client`, `datadir()`, `url_with_auth()` and
/// `rpc_url()` come from [`RegtestNode`]).
pub struct Bitcoind {
    node: RegtestNode,
}

impl std::ops::Deref for Bitcoind {
    type Target = RegtestNode;
    fn deref(&self) -> &RegtestNode {
        &self.node
    }
}

/// Path of the `bitcoind` binary, or a panic explaining how to get one.
pub fn bitcoind_path() -> PathBuf {
    match std::env::var_os("BITCOIND") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "BITCOIND is not set: this test needs a real bitcoind. Run tools/test.sh, or \
             `export BITCOIND=$(tools/build-bitcoind.sh)/bitcoind`"
        ),
    }
}

/// A fixed key whose regtest P2WPKH address receives the coins the tests mine.
pub fn miner_address() -> Address {
    address_for(0x42)
}

/// The regtest P2WPKH address of the key `[seed; 32]`: mining a competing chain to another
/// address keeps its blocks from being identical to invalidated ones.
pub fn address_for(seed: u8) -> Address {
    let sk = PrivateKey::from_slice(&[seed; 32], Network::Regtest).expect("valid key");
    let pk = CompressedPublicKey::from_private_key(&Secp256k1::new(), &sk).expect("compressed");
    Address::p2wpkh(&pk, Network::Regtest)
}

impl Bitcoind {
    /// Starts a fresh regtest node and waits until it answers RPC.
    pub fn start() -> Bitcoind {
        Self::start_with(&[])
    }

    /// Like [`Bitcoind::start`], with extra `bitcoind` arguments.
    pub fn start_with(extra: &[&str]) -> Bitcoind {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(extra) {
                Ok(node) => return node,
                Err(e) => last_err = e,
            }
        }
        panic!("bitcoind did not start after {START_ATTEMPTS} attempts: {last_err}");
    }

    fn try_start(extra: &[&str]) -> Result<Bitcoind, String> {
        let opts = RegtestOptions {
            user: RPC_USER.into(),
            password: RPC_PASSWORD.into(),
            extra_args: std::iter::once("-txindex=1")
                .chain(extra.iter().copied())
                .map(str::to_owned)
                .collect(),
        };
        let node = RegtestNode::start(&bitcoind_path(), &opts).map_err(|e| e.to_string())?;
        Ok(Bitcoind { node })
    }

    /// otsd flags for a stamper on this node that polls every 100 ms and sends at once.
    pub fn stamper_args(&self) -> Vec<String> {
        [
            "--btc-rpc",
            &self.url_with_auth(),
            "--btc-poll-interval-ms",
            "100",
            "--btc-min-tx-interval",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Calls any RPC, panicking with the method name on failure.
    pub fn rpc<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        args: &[serde_json::Value],
    ) -> T {
        self.client
            .call(method, args)
            .unwrap_or_else(|e| panic!("bitcoind RPC {method} {args:?}: {e}"))
    }

    /// Mines `n` blocks paying to `addr`.
    pub fn mine_to(&self, n: u64, addr: &Address) -> Vec<BlockHash> {
        self.client
            .generate_to_address(n, addr)
            .unwrap_or_else(|e| panic!("generatetoaddress {n}: {e}"))
    }

    /// Mines `n` blocks paying to [`miner_address`].
    pub fn mine(&self, n: u64) -> Vec<BlockHash> {
        self.mine_to(n, &miner_address())
    }

    pub fn height(&self) -> u64 {
        self.client.get_block_count().expect("getblockcount")
    }
}
