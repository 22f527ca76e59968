//! The thin I/O edge of the stamper: observes Bitcoin Core over RPC, records what it saw and did
//! in the log, and carries out [`policy::decide`]'s decisions, signing with the calendar's own key
//! or, with `--btc-wallet`, with the node's wallet ([`super::wallet`]).
//!
//! Every tick: follow the best chain from the last block in the projection (finding the fork
//! point of a reorg by comparing hashes), writing `Reorg`, `BlockSeen` and `TxConfirmed` events;
//! then decide, and if a transaction is due, build, sign, broadcast and write `TxBroadcast` after
//! Core accepted it. The tip commits to the covered rounds and to the log's public chain head after
//! the last durable record (the calendar timestamps its own history; see [`LogHead`]). All RPC is blocking and runs on `spawn_blocking`; intake never waits on it.
//! Every failure (node unreachable, RPC error, rejected broadcast, no coins) is logged, shown in the
//! status and retried next tick; no state is lost because the log is only written after facts.
//!
//! A cycle spends the change of the previous mined stamping transaction, known from the log; only
//! when there is none (first start, after a reorg) or it is too small does the driver look for the
//! key's largest coin with `scantxoutset` (no node wallet; works with a pruned node). Replacements spend the input of the transaction they replace, read
//! from the logged raw transaction. With the wallet signer, a cycle spends the wallet's largest
//! confirmed coin from `listunspent` instead, as the Python stamper does.
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Network, OutPoint, Txid};
use bitcoincore_rpc::jsonrpc::{self, simple_http};
use bitcoincore_rpc::{Client, RpcApi};
use serde_json::{json, Value};

use super::key::{Coin, StamperKey};
use super::policy::{self, Decision, Observation, StamperConfig, TxPlan};
use super::wallet;
use crate::anchor::proof::stamp_tip;
use crate::bitcoind::rpc;
use crate::events::codec;
use crate::events::{Event, LogHead};
use crate::log::Submitter;
use crate::projection::Projection;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::StatusBoard;

/// Blocks fetched per tick, so a node far ahead does not stall the loop.
pub const MAX_BLOCKS_PER_TICK: u32 = 50;
/// Coinbase outputs are spendable this many blocks after their own.
const COINBASE_MATURITY: u64 = 100;

/// A block of the best chain as last seen: (height, hash).
type KnownBlock = (u32, [u8; 32]);

/// How to reach Bitcoin Core and how to stamp.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// `http://[USER:PASS@]HOST:PORT/`
    pub rpc_url: String,
    /// Cookie file, used when the URL carries no credentials.
    pub rpc_cookie: Option<std::path::PathBuf>,
    pub network: Network,
    pub policy: StamperConfig,
    pub poll_interval: Duration,
    /// Timeout of each RPC call but `scantxoutset` (which gets [`SCAN_RPC_TIMEOUT`] or this if longer).
    pub rpc_timeout: Duration,
    /// Sign with the node's wallet instead of the calendar's key.
    pub wallet: bool,
}

/// Who signs the stamping transactions.
pub enum Signer {
    /// The calendar's own key; coins found from the log and `scantxoutset`.
    Key(StamperKey),
    /// Bitcoin Core's wallet: `listunspent`, `getrawchangeaddress`, `signrawtransactionwithwallet`.
    Wallet,
}

/// `scantxoutset` reads the whole UTXO set (minutes on mainnet), so it gets its own, much longer
/// timeout: a shorter one would give up, and the next tick would find the node's scan still running
/// ("Scan already in progress") and time out again.
pub const SCAN_RPC_TIMEOUT: Duration = Duration::from_secs(10 * 60);

struct Driver {
    cfg: DriverConfig,
    client: Arc<Client>,
    /// Same node, with the long `scantxoutset` timeout.
    scan_client: Arc<Client>,
    signer: Arc<Signer>,
    writer: Submitter,
    view: Arc<RwLock<Projection>>,
    next_tx_at: u64,
    metrics: Arc<Metrics>,
}

/// Runs the stamper until `stop` flips to true.
pub async fn run(
    cfg: DriverConfig,
    key: StamperKey,
    writer: Submitter,
    view: Arc<RwLock<Projection>>,
    status: StatusBoard,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let scan_timeout = cfg.rpc_timeout.max(SCAN_RPC_TIMEOUT);
    let clients = || {
        rpc::client(&cfg.rpc_url, cfg.rpc_cookie.as_deref(), cfg.rpc_timeout).and_then(|c| {
            Ok((
                c,
                rpc::client(&cfg.rpc_url, cfg.rpc_cookie.as_deref(), scan_timeout)?,
            ))
        })
    };
    let (client, scan_client) = loop {
        match clients() {
            Ok((c, s)) => break (Arc::new(c), Arc::new(s)),
            // A cookie file that cannot be read yet: the node may still be starting (it writes
            // the cookie when ready), so keep trying, as unreachable.
            Err(e) if cfg.rpc_cookie.is_some() => {
                tracing::warn!("stamper: node unreachable: cookie file: {e}; retrying");
                metrics.stamper_error(KIND_NODE_UNREACHABLE);
                let e = format!("{UNREACHABLE}: cookie file: {e}");
                set_status(
                    &status,
                    json!({"error": e, "error_kind": KIND_NODE_UNREACHABLE}),
                );
                tokio::select! {
                    _ = tokio::time::sleep(cfg.poll_interval) => continue,
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                tracing::error!("stamper disabled: bad Bitcoin RPC settings: {e}");
                metrics.stamper_error(KIND_CONFIG);
                set_status(
                    &status,
                    json!({"error": format!("bad RPC settings: {e}"), "error_kind": KIND_CONFIG}),
                );
                return;
            }
        }
    };
    let (signer, address) = if cfg.wallet {
        (Signer::Wallet, "the node's wallet".to_owned())
    } else {
        let address = key.address(cfg.network).to_string();
        (Signer::Key(key), address)
    };
    let mut d = Driver {
        cfg,
        client,
        scan_client,
        signer: Arc::new(signer),
        writer,
        view,
        next_tx_at: 0,
        metrics,
    };
    tracing::info!(
        %address,
        rpc_timeout_secs = d.cfg.rpc_timeout.as_secs_f64(),
        scantxoutset_timeout_secs = scan_timeout.as_secs_f64(),
        "stamper running"
    );
    loop {
        let outcome = d.tick().await;
        d.metrics.next_tx_due.set(d.next_tx_at as i64);
        let report = match &outcome {
            Ok(what) => json!({"address": address, "state": what, "error": null,
                               "error_kind": null, "next_tx_at": d.next_tx_at}),
            Err(e) => {
                tracing::warn!("stamper: {e}; retrying");
                let kind = error_kind(e);
                d.metrics.stamper_error(kind);
                json!({"address": address, "error": e, "error_kind": kind,
                       "next_tx_at": d.next_tx_at})
            }
        };
        set_status(&status, with_chain(report, &d.view));
        tokio::select! {
            _ = tokio::time::sleep(d.cfg.poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
}

fn set_status(board: &StatusBoard, v: Value) {
    *crate::sync::lock(board) = Some(v);
}

fn with_chain(mut report: Value, view: &Arc<RwLock<Projection>>) -> Value {
    let view = crate::sync::read(view);
    let s = &view.stamps().state;
    report["best_height"] = json!(s.tip().map(|t| t.0));
    report["open_cycles"] = json!(s.cycles.len());
    report["next_unstamped_round"] = json!(s.next_unstamped_round());
    report
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Driver {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Projection> {
        crate::sync::read(&self.view)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Client) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        on_blocking(self.client.clone(), f).await
    }

    async fn tick(&mut self) -> Result<String, String> {
        let confirmed = self.follow_chain().await?;
        if confirmed {
            let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.0..1.0);
            self.next_tx_at = policy::next_tx_time(unix_now(), &self.cfg.policy, jitter);
        }
        let obs = self.observe().await?;
        let decision = {
            let view = self.read();
            policy::decide(&view.stamps().state, &self.cfg.policy, &obs)
        };
        match decision {
            Decision::Send(plan) => self.send(plan).await,
            Decision::Wait(w) => Ok(format!("{w:?}")),
            Decision::Blocked(b) => Err(format!("cannot stamp: {b:?}")),
        }
    }

    /// Appends events to the log and folds them into the projection once durable.
    async fn record(&self, events: Vec<Event>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let batch = events
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("encoding: {e}"))?;
        let ack = self.writer.submit(batch).map_err(|e| format!("log: {e}"))?;
        let range = ack
            .await
            .map_err(|_| "log writer stopped".to_owned())?
            .map_err(|e| format!("log: {e}"))?;
        let mut view = crate::sync::write(&self.view);
        for (i, ev) in events.iter().enumerate() {
            if let Err(e) = view.apply(range.first + i as u64, ev) {
                tracing::error!("projection refused a stamper event: {e}");
            }
        }
        Ok(())
    }

    /// Records reorgs, new blocks and confirmations; returns whether a stamping tx got mined.
    async fn follow_chain(&mut self) -> Result<bool, String> {
        let (known, candidates): (Vec<KnownBlock>, Vec<Candidate>) = {
            let view = self.read();
            let s = &view.stamps().state;
            (
                s.blocks.iter().rev().map(|(h, b)| (*h, *b)).collect(),
                s.txids_with_confirmation().collect(),
            )
        };
        let events = self
            .blocking(move |c| chain_events(c, &known, &candidates))
            .await?;
        let confirmed = events
            .iter()
            .any(|e| matches!(e, Event::TxConfirmed { .. }));
        for e in &events {
            match e {
                Event::Reorg { fork_height, .. } => {
                    tracing::warn!(fork_height, "reorg: confirmations above undone")
                }
                Event::TxConfirmed { txid, height, .. } => {
                    tracing::info!(txid = %Txid::from_byte_array(*txid), height, "stamp mined")
                }
                _ => {}
            }
        }
        self.record(events).await?;
        Ok(confirmed)
    }

    async fn observe(&self) -> Result<Observation, String> {
        let target = self.cfg.policy.conf_target;
        let (height, estimate, relay) = self
            .blocking(move |c| {
                let height = c.get_block_count().map_err(rpc_err("getblockcount"))?;
                let est: Value = c
                    .call("estimatesmartfee", &[json!(target)])
                    .map_err(rpc_err("estimatesmartfee"))?;
                let net: Value = c
                    .call("getnetworkinfo", &[])
                    .map_err(rpc_err("getnetworkinfo"))?;
                Ok((
                    height,
                    btc_per_kvb(&est["feerate"]),
                    btc_per_kvb(&net["relayfee"]),
                ))
            })
            .await?;
        let last_sealed = self.read().next_round().checked_sub(1);
        Ok(Observation {
            now: unix_now(),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            last_sealed_round: last_sealed,
            estimate_sat_per_kvb: estimate,
            relay_sat_per_kvb: relay.unwrap_or(1000),
            next_tx_at: self.next_tx_at,
        })
    }

    async fn send(&self, plan: TxPlan) -> Result<String, String> {
        let head = self.writer.head();
        let log_head = LogHead {
            next_seq: head.next_seq,
            hash: head.chain.hash,
        };
        let (tip, raw_prev) = {
            let view = self.read();
            let commitments = view
                .round_commitments(plan.first_round, plan.last_round)
                .map_err(|e| e.to_string())?;
            let tip = stamp_tip(commitments.iter().map(|c| &c[..]), Some(&log_head.hash))
                .ok_or_else(|| "no commitments for the planned rounds".to_owned())?;
            let prev = plan
                .replaces
                .and_then(|(txid, _)| view.stamps().raw_tx(&txid).map(<[u8]>::to_vec));
            (tip, prev)
        };
        let coin = match (plan.replaces, raw_prev) {
            (Some((_, input_sat)), Some(raw)) => Coin {
                outpoint: first_input(&raw)?,
                value_sat: input_sat,
            },
            (Some(_), None) => return Err("replaced transaction missing from the log".into()),
            (None, _) => self.find_coin(&plan).await?,
        };
        policy::fits_coin(&plan, coin.value_sat).map_err(|b| format!("cannot stamp: {b:?}"))?;
        let tx = self.sign(coin, plan.fee_sat, tip, plan.locktime).await?;
        let raw = bitcoin::consensus::encode::serialize(&tx);
        let hex_tx = hex::encode(&raw);
        let txid = self
            .blocking(move |c| {
                c.call::<Txid>("sendrawtransaction", &[json!(hex_tx)])
                    .map_err(rpc_err("sendrawtransaction"))
            })
            .await?;
        tracing::info!(%txid, rounds = ?(plan.first_round..=plan.last_round), fee = plan.fee_sat, "stamp sent");
        self.metrics.stamper_broadcasts.inc();
        self.metrics.stamper_last_broadcast.set(unix_now() as i64);
        self.record(vec![Event::TxBroadcast {
            txid: txid.to_byte_array(),
            raw_tx: raw,
            tip,
            first_round: plan.first_round,
            last_round: plan.last_round,
            fee_sat: plan.fee_sat,
            feerate_sat_per_kvb: plan.feerate_sat_per_kvb,
            input_sat: coin.value_sat,
            height: plan.locktime,
            replaces: plan.replaces.map(|(t, _)| t),
            log_head: Some(log_head),
        }])
        .await?;
        Ok(format!("sent {txid}"))
    }

    /// The stamping transaction spending `coin`, signed by the key or the wallet.
    async fn sign(
        &self,
        coin: Coin,
        fee_sat: u64,
        tip: [u8; 32],
        locktime: u32,
    ) -> Result<bitcoin::Transaction, String> {
        match &*self.signer {
            Signer::Key(key) => key
                .stamp_tx(&coin, fee_sat, &tip, locktime)
                .map_err(|e| e.to_string()),
            Signer::Wallet => {
                let network = self.cfg.network;
                self.blocking(move |c| {
                    wallet::wallet_stamp_tx(c, network, &coin, fee_sat, &tip, locktime)
                })
                .await
            }
        }
    }

    /// With the wallet: its largest confirmed coin. With the key: the change of the newest mined
    /// stamping transaction (from the log) if it pays for `plan`, else the largest spendable coin
    /// of the key from the UTXO set (first start, top-ups).
    async fn find_coin(&self, plan: &TxPlan) -> Result<Coin, String> {
        let key = match &*self.signer {
            Signer::Key(key) => key,
            Signer::Wallet => return self.blocking(|c| wallet::wallet_coin(c)).await,
        };
        let change = self.read().stamps().change_coin();
        if let Some((txid, value_sat)) = change {
            let coin = Coin {
                outpoint: OutPoint::new(Txid::from_byte_array(txid), super::key::CHANGE_VOUT),
                value_sat,
            };
            if policy::fits_coin(plan, value_sat).is_ok() {
                return Ok(coin);
            }
        }
        self.scan_coin(key, plan.locktime).await
    }

    /// The largest spendable coin of the key, from the UTXO set.
    async fn scan_coin(&self, key: &StamperKey, height: u32) -> Result<Coin, String> {
        let address = key.address(self.cfg.network);
        let desc = format!("addr({address})");
        tracing::info!(%address, "looking for coins with scantxoutset (may take minutes on mainnet)");
        let scan: Value = on_blocking(self.scan_client.clone(), move |c| {
            c.call("scantxoutset", &[json!("start"), json!([desc])])
                .map_err(rpc_err("scantxoutset"))
        })
        .await?;
        let best = scan["unspents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| {
                let coinbase = u["coinbase"].as_bool().unwrap_or(false);
                let at = u["height"].as_u64().unwrap_or(u64::MAX);
                !coinbase || u64::from(height) >= at.saturating_add(COINBASE_MATURITY)
            })
            .filter_map(|u| {
                let txid: Txid = u["txid"].as_str()?.parse().ok()?;
                let vout = u32::try_from(u["vout"].as_u64()?).ok()?;
                Some(Coin {
                    outpoint: OutPoint::new(txid, vout),
                    value_sat: btc_to_sat(&u["amount"])?,
                })
            })
            .max_by_key(|c| c.value_sat);
        best.ok_or_else(|| format!("no spendable coins: fund {address}"))
    }
}

async fn on_blocking<T: Send + 'static>(
    client: Arc<Client>,
    f: impl FnOnce(&Client) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || f(&client))
        .await
        .map_err(|e| format!("RPC task: {e}"))?
}

/// Error kinds of a failed tick, as the `kind` label of `otsd_stamper_errors_total` and the
/// status board's `error_kind` (what `/readyz` raises alarms from).
pub const KIND_NODE_UNREACHABLE: &str = "node_unreachable";
pub const KIND_CANNOT_PAY: &str = "cannot_pay";
pub const KIND_MAX_FEE: &str = "max_fee";
pub const KIND_RPC: &str = "rpc";
pub const KIND_LOG: &str = "log";
pub const KIND_CONFIG: &str = "config";
pub const KIND_OTHER: &str = "other";

/// Marks an error message as the node not answering at all (see [`error_kind`]).
const UNREACHABLE: &str = "node unreachable";

/// The kind of a tick's error message. The messages are ours (built by [`rpc_err`], the policy's
/// [`policy::Blocked`] and [`Driver::record`]), so their prefixes are a closed set.
pub fn error_kind(e: &str) -> &'static str {
    if e.contains(UNREACHABLE) {
        KIND_NODE_UNREACHABLE
    } else if e.contains("OutOfMoney") || e.starts_with("no spendable coins") {
        KIND_CANNOT_PAY
    } else if e.contains("MaxFeeReached") {
        KIND_MAX_FEE
    } else if e.starts_with("Bitcoin Core ") {
        KIND_RPC
    } else if e.starts_with("log") {
        KIND_LOG
    } else {
        KIND_OTHER
    }
}

/// Names the call and says plainly when it timed out or the node could not be reached.
fn rpc_err(method: &'static str) -> impl Fn(bitcoincore_rpc::Error) -> String {
    move |e| {
        if is_timeout(&e) {
            format!("Bitcoin Core {method}: {UNREACHABLE}: no answer within the RPC timeout ({e})")
        } else if is_transport(&e) {
            format!("Bitcoin Core {method}: {UNREACHABLE}: {e}")
        } else {
            format!("Bitcoin Core {method}: {e}")
        }
    }
}

/// A failure to reach the node (connection refused, reset, HTTP-level failure), not an RPC error.
fn is_transport(e: &bitcoincore_rpc::Error) -> bool {
    matches!(
        e,
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Transport(_))
    )
}

fn is_timeout(e: &bitcoincore_rpc::Error) -> bool {
    let bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Transport(t)) = e else {
        return false;
    };
    match t.downcast_ref::<simple_http::Error>() {
        Some(simple_http::Error::SocketError(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        _ => false,
    }
}

fn btc_to_sat(v: &Value) -> Option<u64> {
    let btc = v.as_f64()?;
    bitcoin::Amount::from_btc(btc).ok().map(|a| a.to_sat())
}

fn btc_per_kvb(v: &Value) -> Option<u64> {
    btc_to_sat(v)
}

fn first_input(raw: &[u8]) -> Result<OutPoint, String> {
    let tx: bitcoin::Transaction =
        bitcoin::consensus::encode::deserialize(raw).map_err(|e| e.to_string())?;
    tx.input
        .first()
        .map(|i| i.previous_output)
        .ok_or_else(|| "logged transaction has no input".to_owned())
}

/// Blocking: compares the known chain with the node's and returns the events describing the
/// difference (a `Reorg` at the fork point, then `BlockSeen` and `TxConfirmed` per new block).
/// A transaction the chain is searched for: its txid and the height its cycle is confirmed at.
type Candidate = ([u8; 32], Option<u32>);

/// The chain events since the blocks known: a reorg back to the fork, then each new block and the
/// confirmations in it of the `candidates` (txid, height its cycle is confirmed at) that are
/// unconfirmed once the reorg is undone: a transaction confirmed above the fork is looked for
/// again, since the competing chain may hold it at another height.
fn chain_events(
    c: &Client,
    known_desc: &[KnownBlock],
    candidates: &[Candidate],
) -> Result<Vec<Event>, String> {
    let best = c.get_block_count().map_err(rpc_err("getblockcount"))?;
    let best = u32::try_from(best).unwrap_or(u32::MAX);
    let mut events = Vec::new();
    let start = match known_desc.first() {
        None => best,
        Some(&(top, top_hash)) => {
            let fork = find_fork(c, known_desc, best)?;
            if fork < top {
                let new_tip = c
                    .get_block_hash(u64::from(best))
                    .map_err(rpc_err("getblockhash"))?
                    .to_byte_array();
                events.push(Event::Reorg {
                    fork_height: fork,
                    old_tip: top_hash,
                    new_tip,
                });
            }
            fork + 1
        }
    };
    let watched: Vec<[u8; 32]> = candidates
        .iter()
        .filter(|(_, confirmed)| confirmed.is_none_or(|h| h >= start))
        .map(|(txid, _)| *txid)
        .collect();
    let watched = &watched[..];
    let end = best.min(start.saturating_add(MAX_BLOCKS_PER_TICK - 1));
    for height in start..=end {
        let hash = c
            .get_block_hash(u64::from(height))
            .map_err(rpc_err("getblockhash"))?;
        events.push(Event::BlockSeen {
            height,
            hash: hash.to_byte_array(),
        });
        if !watched.is_empty() {
            confirmations_in(c, &hash, height, watched, &mut events)?;
        }
    }
    Ok(events)
}

/// Highest known height whose hash the node still has in its best chain.
fn find_fork(c: &Client, known_desc: &[KnownBlock], best: u32) -> Result<u32, String> {
    for &(height, hash) in known_desc {
        if height > best {
            continue;
        }
        let node = c
            .get_block_hash(u64::from(height))
            .map_err(rpc_err("getblockhash"))?;
        if node.to_byte_array() == hash {
            return Ok(height);
        }
    }
    // Deeper than we track: follow from just below what we know.
    Ok(known_desc
        .last()
        .map_or(0, |(h, _)| h.saturating_sub(1))
        .min(best))
}

fn confirmations_in(
    c: &Client,
    hash: &BlockHash,
    height: u32,
    watched: &[[u8; 32]],
    events: &mut Vec<Event>,
) -> Result<(), String> {
    let block = c.get_block(hash).map_err(rpc_err("getblock"))?;
    let txids: Vec<[u8; 32]> = block
        .txdata
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    for txid in txids.iter().filter(|t| watched.contains(t)) {
        events.push(Event::TxConfirmed {
            txid: *txid,
            block_hash: hash.to_byte_array(),
            height,
            block_txids: txids.concat(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing listens: the node is unreachable, and the kind says so.
    #[test]
    fn refused_connections_are_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://u:p@127.0.0.1:{port}/");
        let client = rpc::client(&url, None, Duration::from_millis(300)).unwrap();
        let err = client
            .get_block_count()
            .map_err(rpc_err("getblockcount"))
            .unwrap_err();
        assert_eq!(error_kind(&err), KIND_NODE_UNREACHABLE, "{err}");
        let blocked = format!(
            "cannot stamp: {:?}",
            policy::Blocked::OutOfMoney {
                input_sat: 1,
                fee_sat: 2
            }
        );
        assert_eq!(error_kind(&blocked), KIND_CANNOT_PAY);
        assert_eq!(
            error_kind("no spendable coins: fund bcrt1q..."),
            KIND_CANNOT_PAY
        );
    }

    /// A node that accepts the connection but never answers: the call fails after the timeout,
    /// and the error says so.
    #[test]
    fn rpc_calls_time_out_and_say_so() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://u:p@{}/", silent.local_addr().unwrap());
        let client = rpc::client(&url, None, Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        let err = client
            .get_block_count()
            .map_err(rpc_err("getblockcount"))
            .unwrap_err();
        assert!(err.contains("no answer within the RPC timeout"), "{err}");
        assert_eq!(error_kind(&err), KIND_NODE_UNREACHABLE);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
