//! `otsctl verify --btc-rpc`: the confirmations the log still stands by, checked against Bitcoin
//! Core's best chain.
//!
//! A confirmation stands if the projection still counts its transaction as mined after every
//! reorg the log records (final ones included, whose proofs otsd keeps serving). For each, the
//! node must have the recorded block at the recorded height of its best chain, that block's header
//! must carry the Merkle root recomputed from the recorded txids, its transactions must be exactly
//! the recorded ones, and the stamping transaction in it must carry the recorded tip in its
//! `OP_RETURN` output. A node that cannot be reached is an error, never a pass.
//!
//! Memory: per confirmation, its block's txids are kept as a SHA-256 of their list, not the list.
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bitcoin::hashes::Hash as _;
use bitcoin::{Block, BlockHash};
use bitcoincore_rpc::{Client, RpcApi};
use sha2::{Digest, Sha256};

use super::proofs::block_merkle_root;
use super::verify::txid_hex;
use super::ToolError;
use crate::bitcoind::rpc::{self, redact};
use crate::projection::Projection;

type Hash32 = [u8; 32];

/// Timeout of each RPC call of the check.
pub const NODE_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// A Bitcoin Core node to check confirmations against.
pub struct Node {
    client: Client,
    url: String,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("url", &self.url).finish()
    }
}

impl Node {
    /// Connects to `url` (`http://[USER:PASS@]HOST:PORT/`, else credentials from `cookie`) and
    /// asks for its best height, so that an unreachable node fails before the log is read.
    pub fn connect(url: &str, cookie: Option<&Path>) -> Result<Node, ToolError> {
        let shown = redact(url);
        let client = rpc::client(url, cookie, NODE_RPC_TIMEOUT)
            .map_err(|e| ToolError::Node(format!("{shown}: {e}")))?;
        let node = Node { client, url: shown };
        node.best_height()?;
        Ok(node)
    }

    fn fail(&self, method: &str, e: bitcoincore_rpc::Error) -> ToolError {
        ToolError::Node(format!("{} {method}: {e}", self.url))
    }

    fn best_height(&self) -> Result<u64, ToolError> {
        self.client
            .get_block_count()
            .map_err(|e| self.fail("getblockcount", e))
    }
}

/// What a `TxConfirmed` claimed, kept until the end of the read.
#[derive(Debug, Clone)]
struct Claim {
    seq: u64,
    block_hash: Hash32,
    height: u32,
    merkle_root: Option<Hash32>,
    txids_sha256: Hash32,
}

/// The tips broadcast and the latest confirmation of each transaction, folded by `verify`.
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    tips: HashMap<Hash32, Hash32>,
    claims: HashMap<Hash32, Claim>,
}

impl Confirmations {
    pub(crate) fn broadcast(&mut self, txid: &Hash32, tip: &Hash32) {
        self.tips.insert(*txid, *tip);
    }

    pub(crate) fn confirmed(
        &mut self,
        seq: u64,
        txid: &Hash32,
        block: (&Hash32, u32),
        txids: &[u8],
    ) {
        let claim = Claim {
            seq,
            block_hash: *block.0,
            height: block.1,
            merkle_root: block_merkle_root(txids),
            txids_sha256: Sha256::digest(txids).into(),
        };
        self.claims.insert(*txid, claim);
    }

    /// The claims whose transaction `view` still counts as mined, in log order.
    fn standing(&self, view: &Projection) -> Vec<(&Hash32, &Claim)> {
        let mut out: Vec<(&Hash32, &Claim)> = view
            .stamps()
            .mined()
            .filter_map(|(_, m, _)| self.claims.get_key_value(&m.txid))
            .collect();
        out.sort_by_key(|(_, c)| c.seq);
        out
    }
}

/// Checks every standing confirmation against `node`; returns how many hold and `(seq, why)`
/// for each that does not. Errors only if the node stops answering.
pub(crate) fn check_confirmations(
    node: &Node,
    confirmations: &Confirmations,
    view: &Projection,
) -> Result<(u64, Vec<(u64, String)>), ToolError> {
    let best = node.best_height()?;
    let mut good = 0;
    let mut bad = Vec::new();
    for (txid, claim) in confirmations.standing(view) {
        let tip = confirmations.tips.get(txid);
        match check_one(node, best, txid, claim, tip)? {
            Ok(()) => good += 1,
            Err(why) => bad.push((claim.seq, why)),
        }
    }
    Ok((good, bad))
}

/// Checks the block Merkle roots that imported proofs attest (`height -> (root, seq)`) against
/// the node's best chain; returns how many hold and `(seq, why)` for each that does not.
pub(crate) fn check_attested_roots(
    node: &Node,
    roots: &std::collections::BTreeMap<u32, ([u8; 32], u64)>,
) -> Result<(u64, Vec<(u64, String)>), ToolError> {
    let best = node.best_height()?;
    let mut good = 0;
    let mut bad = Vec::new();
    for (&height, &(root, seq)) in roots {
        if u64::from(height) > best {
            bad.push((
                seq,
                format!(
                    "imported proof attests block {height}, above the node's best height {best}"
                ),
            ));
            continue;
        }
        let hash = node
            .client
            .get_block_hash(u64::from(height))
            .map_err(|e| node.fail("getblockhash", e))?;
        let header = node
            .client
            .get_block_header(&hash)
            .map_err(|e| node.fail("getblockheader", e))?;
        if header.merkle_root.to_byte_array() == root {
            good += 1;
        } else {
            bad.push((
                seq,
                format!(
                    "imported proof attests Merkle root {} for block {height}, the node's block {hash} has {}",
                    super::hex(&root),
                    super::hex(&header.merkle_root.to_byte_array())
                ),
            ));
        }
    }
    Ok((good, bad))
}

/// The outer error is the node failing; the inner one a confirmation that does not hold.
fn check_one(
    node: &Node,
    best: u64,
    txid: &Hash32,
    claim: &Claim,
    tip: Option<&Hash32>,
) -> Result<Result<(), String>, ToolError> {
    let (height, recorded) = (claim.height, BlockHash::from_byte_array(claim.block_hash));
    let what = format!(
        "transaction {} in block {recorded} at height {height}",
        txid_hex(txid)
    );
    if u64::from(height) > best {
        return Ok(Err(format!(
            "{what}: not in the node's best chain, which ends at height {best}"
        )));
    }
    let at_height = node
        .client
        .get_block_hash(u64::from(height))
        .map_err(|e| node.fail("getblockhash", e))?;
    if at_height != recorded {
        return Ok(Err(format!(
            "{what}: not in the node's best chain, which has block {at_height} at that height"
        )));
    }
    let header = node
        .client
        .get_block_header(&recorded)
        .map_err(|e| node.fail("getblockheader", e))?;
    let root = header.merkle_root.to_byte_array();
    if claim.merkle_root != Some(root) {
        return Ok(Err(format!(
            "{what}: the node's Merkle root {} is not the one recomputed from the recorded txids",
            header.merkle_root
        )));
    }
    let block = node
        .client
        .get_block(&recorded)
        .map_err(|e| node.fail("getblock", e))?;
    Ok(check_block(&block, txid, claim, tip).map_err(|why| format!("{what}: {why}")))
}

/// The block's transactions are the recorded ones, and the stamping one carries the tip.
fn check_block(
    block: &Block,
    txid: &Hash32,
    claim: &Claim,
    tip: Option<&Hash32>,
) -> Result<(), String> {
    let txids: Vec<u8> = block
        .txdata
        .iter()
        .flat_map(|t| t.compute_txid().to_byte_array())
        .collect();
    if <[u8; 32]>::from(Sha256::digest(&txids)) != claim.txids_sha256 {
        return Err("the node's block holds other transactions than the recorded ones".into());
    }
    let tx = block
        .txdata
        .iter()
        .find(|t| t.compute_txid().to_byte_array() == *txid)
        .ok_or("the transaction is not in the node's block")?;
    let Some(tip) = tip else {
        return Err("no TxBroadcast records the transaction's tip".into());
    };
    let op_return = [&[0x6a, 0x20][..], tip].concat();
    if !tx
        .output
        .iter()
        .any(|o| o.script_pubkey.as_bytes() == op_return)
    {
        return Err(format!(
            "the transaction has no OP_RETURN output carrying the recorded tip {}",
            super::hex(tip)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_node_is_an_error() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let err = Node::connect(&format!("http://u:p@127.0.0.1:{port}/"), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("getblockcount") && !msg.contains(":p@"),
            "{msg}"
        );
    }
}
