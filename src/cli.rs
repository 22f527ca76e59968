//! Command-line interfaces of `otsd` and `otsctl`. The binaries only parse these and call [`crate`].
use crate::stamper::driver::DriverConfig;
use crate::stamper::key::network_from_name;
use crate::stamper::StamperConfig;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::daemon::ServeConfig;
use crate::http::server::ServerOptions;

/// The default calendar directory, as the Python otsd: `~/.otsd/calendar`.
pub fn default_calendar_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".otsd").join("calendar")
}

/// OpenTimestamps calendar server (a drop-in replacement for the Python otsd).
///
/// Reads `uri`, `donation_addr` and `hmac-key` from the calendar directory (create one with
/// `otsctl init`) and keeps its event log in DIR/log. Stops cleanly on SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "otsd", version)]
pub struct OtsdArgs {
    /// Calendar directory [default: ~/.otsd/calendar]
    #[arg(short = 'c', long = "calendar", value_name = "DIR")]
    pub calendar: Option<PathBuf>,
    /// Address to serve the HTTP API on
    #[arg(long, default_value = "localhost", value_name = "ADDR")]
    pub rpc_address: String,
    /// Port to serve the HTTP API on (0 picks a free one)
    #[arg(long, default_value_t = 14788, value_name = "PORT")]
    pub rpc_port: u16,
    /// Use Bitcoin testnet rather than mainnet
    #[arg(long, conflicts_with = "btc_regtest")]
    pub btc_testnet: bool,
    /// Use Bitcoin regtest rather than mainnet
    #[arg(long)]
    pub btc_regtest: bool,
    /// A throw-away local calendar for client developers: temporary directory, a regtest bitcoind
    /// (built first if none is found), a funded stamper key and a block mined every few seconds
    #[arg(long)]
    pub dev: bool,
    /// With --dev: milliseconds between mined blocks
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub dev_block_interval_ms: u64,
    /// Bitcoin Core RPC URL, `http://USER:PASS@HOST:PORT/`; without it the calendar does not stamp
    #[arg(long, value_name = "URL")]
    pub btc_rpc: Option<String>,
    /// Bitcoin Core cookie file, for a --btc-rpc URL without credentials
    #[arg(long, value_name = "FILE")]
    pub btc_rpc_cookie: Option<PathBuf>,
    /// Sign with the node's Bitcoin Core wallet (listunspent, getrawchangeaddress,
    /// signrawtransactionwithwallet) instead of the calendar's own key; name the wallet in
    /// --btc-rpc (`.../wallet/NAME`) if the node has several
    #[arg(long)]
    pub btc_wallet: bool,
    /// Seconds to wait for each Bitcoin Core RPC answer (scantxoutset, which reads the whole UTXO
    /// set, waits at least 10 minutes)
    #[arg(long, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub btc_rpc_timeout: u64,
    /// Milliseconds between the stamper's looks at the node
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub btc_poll_interval_ms: u64,
    /// Minimum relay feerate, sat/vB
    #[arg(long, default_value_t = 1.0, value_name = "FEERATE")]
    pub btc_min_relay_feerate: f64,
    /// Confirmation target for the first transaction of a cycle (1..=1008); later ones are RBF bumps
    #[arg(long, default_value_t = 1008, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1008))]
    pub btc_conf_target: u16,
    /// Confirmations before a proof is final and served (must be greater than 1)
    #[arg(long, default_value_t = 6, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub btc_min_confirmations: u32,
    /// Minimum seconds between stamping cycles (randomized up to twice this)
    #[arg(long, default_value_t = 6 * 60 * 60, value_name = "SECONDS")]
    pub btc_min_tx_interval: u64,
    /// Maximum transaction fee, BTC
    #[arg(long, default_value_t = 0.001, value_name = "FEE")]
    pub btc_max_fee: f64,
    /// Most digests waiting for the next round; beyond it POST /digest answers 503 with Retry-After
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_pending: usize,
    /// Minimum milliseconds between rounds (0: seal a round as soon as the previous one is on disk)
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub min_round_interval_ms: u64,
    /// Most HTTP connections served at once (further ones wait in the listen backlog)
    #[arg(long, default_value_t = 16_384, value_name = "N")]
    pub max_connections: usize,
    /// Seconds a client may take to send request headers, or stay idle between requests
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub header_timeout: u64,
    /// Size at which a log segment is sealed and a new one started, in MiB (the projection is
    /// checkpointed at each: start-up folds at most one segment)
    #[arg(long, default_value_t = default_segment_mib(), value_name = "MIB")]
    pub segment_size_mib: u64,
    /// Also append logs to this file
    #[arg(long, value_name = "FILE")]
    pub debug_file: Option<PathBuf>,
    /// Be more verbose (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Be more quiet (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl OtsdArgs {
    pub fn verbosity(&self) -> i32 {
        i32::from(self.verbose) - i32::from(self.quiet)
    }

    pub fn network(&self) -> &'static str {
        match (self.btc_testnet, self.btc_regtest) {
            (true, _) => "testnet",
            (_, true) => "regtest",
            _ => "mainnet",
        }
    }

    /// The configuration for `--dev`: serve `calendar` on `port` of 127.0.0.1, stamping on the dev
    /// node at `node_url` with no interval between cycles.
    pub fn dev_serve_config(&self, calendar: PathBuf, port: u16, node_url: &str) -> ServeConfig {
        let mut cfg = self.serve_config();
        cfg.calendar_dir = calendar;
        cfg.rpc_address = "127.0.0.1".into();
        cfg.rpc_port = port;
        cfg.network = "regtest".into();
        let mut policy = self.stamper_policy();
        policy.min_tx_interval_secs = 0;
        cfg.stamper = Some(DriverConfig {
            rpc_url: node_url.to_owned(),
            rpc_cookie: None,
            network: network_from_name("regtest"),
            policy,
            poll_interval: Duration::from_millis(500),
            rpc_timeout: Duration::from_secs(self.btc_rpc_timeout),
            wallet: false,
        });
        cfg
    }

    fn stamper_policy(&self) -> StamperConfig {
        StamperConfig {
            conf_target: self.btc_conf_target,
            min_relay_sat_per_kvb: (self.btc_min_relay_feerate.max(0.0) * 1000.0) as u64,
            max_fee_sat: (self.btc_max_fee.max(0.0) * 1e8) as u64,
            min_tx_interval_secs: self.btc_min_tx_interval,
            min_confirmations: self.btc_min_confirmations,
        }
    }

    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig {
            calendar_dir: self.calendar.clone().unwrap_or_else(default_calendar_dir),
            rpc_address: self.rpc_address.clone(),
            rpc_port: self.rpc_port,
            network: self.network().to_owned(),
            max_pending: self.max_pending,
            min_round_interval: Duration::from_millis(self.min_round_interval_ms),
            segment_size: self.segment_size_mib.max(1) << 20,
            min_confirmations: self.btc_min_confirmations,
            stamper: self.btc_rpc.as_ref().map(|url| DriverConfig {
                rpc_url: url.clone(),
                rpc_cookie: self.btc_rpc_cookie.clone(),
                network: network_from_name(self.network()),
                policy: self.stamper_policy(),
                poll_interval: Duration::from_millis(self.btc_poll_interval_ms.max(10)),
                rpc_timeout: Duration::from_secs(self.btc_rpc_timeout),
                wallet: self.btc_wallet,
            }),
            http: ServerOptions {
                max_connections: self.max_connections.max(1),
                header_timeout: Duration::from_secs(self.header_timeout.max(1)),
                ..ServerOptions::default()
            },
        }
    }
}

/// Operator tools for an otsd calendar.
#[derive(Debug, Parser)]
#[command(name = "otsctl", version)]
pub struct OtsctlArgs {
    #[command(subcommand)]
    pub command: OtsctlCommand,
}

#[derive(Debug, Subcommand)]
pub enum OtsctlCommand {
    /// Create a calendar directory: uri, donation_addr and a random hmac-key (mode 0600)
    Init(InitArgs),
    /// Print the P2WPKH address of the calendar's stamper key: send coins there to fund stamping
    Address(AddressArgs),
    /// Verify the calendar's whole history: log checksums, chains and seals, event order, every
    /// round's Merkle root and commitment MAC, the log heads and tips of stamping transactions,
    /// and with --btc-rpc the confirmations against Bitcoin Core. Exits non-zero if anything is
    /// wrong
    Verify(VerifyArgs),
    /// Dump the log's events, or find where a digest or commitment is
    Inspect(InspectArgs),
    /// Rebuild the projection otsd serves from (its history and checkpoint in DIR/projection) from
    /// the log alone, in place (stop otsd first) or into another directory, and report how long it
    /// took
    Replay(ReplayArgs),
    /// Copy the calendar's log segments into a mirror directory, incrementally (for `recover`).
    /// Safe to run from cron while otsd runs; serve the mirror with any static HTTP server to make
    /// it a URL replica
    Ship(ShipArgs),
    /// Rebuild a lost or damaged log from an untrusted replica (a mirror directory or URL): keeps
    /// the longest log whose every record verifies under the calendar's key, never replaces
    /// authentic local records, and moves the previous log aside. Exits 2 if anything was rejected
    Recover(RecoverArgs),
    /// After a loss, put back the commitments clients hold in their .ots files: those under a
    /// pending attestation of this calendar whose MAC verifies are appended to the log as new
    /// rounds, stamped after otsd restarts. Run with otsd stopped. Exits 1 if any file was rejected
    /// (the accepted ones are written all the same; running again is harmless)
    Readmit(ReadmitArgs),
    /// Write a standard .ots proof that the log's history up to a point existed when a Bitcoin
    /// block was mined: the timestamp of the public chain value a final stamping transaction
    /// commits to. Check it with `ots verify -d HASH FILE.ots`
    ProveHead(ProveHeadArgs),
}

#[derive(Debug, Args)]
pub struct ReadmitArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// Client timestamp files (.ots) holding pending attestations of this calendar
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Examine and report only; write nothing (works while otsd runs)
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ProveHeadArgs {
    /// The calendar directory (a replica's log is enough: the key is not needed)
    pub dir: PathBuf,
    /// Prove the oldest final head covering this event, rather than the newest final head
    #[arg(long, value_name = "SEQ")]
    pub seq: Option<u64>,
    /// Where to write the .ots file [default: log-head-NEXTSEQ.ots]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print what was proven as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// First sequence number to check and report (the log is still read from its start)
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Last sequence number to check and report
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// Do not read hmac-key: skip the HMAC chain and commitment MACs
    #[arg(long)]
    pub no_key: bool,
    /// Bitcoin Core RPC URL, `http://USER:PASS@HOST:PORT/`: also check that every confirmation
    /// still standing is in the node's best chain, with the recorded Merkle root, transactions
    /// and tip
    #[arg(long, value_name = "URL")]
    pub btc_rpc: Option<String>,
    /// Bitcoin Core cookie file, for a --btc-rpc URL without credentials
    #[arg(long, value_name = "FILE", requires = "btc_rpc")]
    pub btc_rpc_cookie: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// First sequence number to show
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Last sequence number to show
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// Only events of this type (DigestSubmitted, RoundSealed, TxBroadcast, TxConfirmed, BlockSeen,
    /// Reorg, CommitmentReadmitted)
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Print JSON (one object per line for a dump)
    #[arg(long)]
    pub json: bool,
    /// Where is this commitment (hex)?
    #[arg(long, value_name = "HEX", conflicts_with = "digest")]
    pub commitment: Option<String>,
    /// Where is this submitted digest (hex)?
    #[arg(long, value_name = "HEX")]
    pub digest: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// Write the rebuilt projection into this (new or empty) directory instead of DIR/projection
    #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
    pub out: Option<PathBuf>,
    /// Only fold the log (in memory: for small logs) and report; write no checkpoint
    #[arg(long)]
    pub dry_run: bool,
    /// otsd's --btc-min-confirmations: otsd only uses a checkpoint folded with its own value
    #[arg(long, default_value_t = 6, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub btc_min_confirmations: u32,
    /// Plain progress lines even on a terminal (no progress bar)
    #[arg(long)]
    pub no_bar: bool,
}

#[derive(Debug, Args)]
pub struct AddressArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// Show the testnet address
    #[arg(long, conflicts_with = "btc_regtest")]
    pub btc_testnet: bool,
    /// Show the regtest address
    #[arg(long)]
    pub btc_regtest: bool,
}

impl AddressArgs {
    pub fn network(&self) -> &'static str {
        match (self.btc_testnet, self.btc_regtest) {
            (true, _) => "testnet",
            (_, true) => "regtest",
            _ => "mainnet",
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create
    pub dir: PathBuf,
    /// The calendar's public URL, written into every pending attestation
    #[arg(long)]
    pub uri: String,
    /// Bitcoin address for donations, shown on the info page
    #[arg(long)]
    pub donation_addr: String,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// The mirror directory (created if needed); it receives the segments and `segments.txt`
    /// (name, length, sha256, sealed|open per segment), never the hmac-key
    #[arg(long, value_name = "MIRROR_DIR")]
    pub to: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// `otsctl recover`. Exit status: 0 recovered and nothing rejected; 2 recovered (or, with
/// --dry-run, planned) but something was rejected, see the report; 1 could not run.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 nothing rejected; 2 something was rejected (the report \
    names every rejected segment, offset, sequence number and reason; the authentic prefix was \
    still kept); 1 could not run (e.g. otsd is running on the calendar)."
)]
pub struct RecoverArgs {
    /// The calendar directory: its hmac-key is trusted, its log may be missing or damaged
    pub dir: PathBuf,
    /// The replica: a mirror directory (from `otsctl ship`), a copy of a log or calendar
    /// directory, or the plain-HTTP URL of a mirror (`http://HOST[:PORT]/PATH`; no https: the
    /// data is verified anyway)
    #[arg(long, value_name = "DIR_OR_URL")]
    pub from: String,
    /// Only report what would be kept and rejected; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// [`crate::log::writer::DEFAULT_SEGMENT_SIZE`] in MiB, the `--segment-size-mib` default.
const fn default_segment_mib() -> u64 {
    crate::log::writer::DEFAULT_SEGMENT_SIZE >> 20
}
