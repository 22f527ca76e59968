//! `otsd`'s arguments. [`crate::config`] turns them into a [`crate::config::ServeConfig`].
//!
//! Defaults owned by a library module are taken from it (segment size, HTTP limits, stamper
//! policy, finality depth); the others are defined here, once. Every numeric flag has a range, and
//! a value outside it is refused by the parser, naming the range.
use std::path::PathBuf;

use clap::Parser;

use super::shared::{Btc, ConfirmationsArgs, NetworkArgs, NodeArgs, SatPerVb};
use crate::http::server::ServerOptions;
use crate::log::writer::DEFAULT_SEGMENT_SIZE;
use crate::replica::bucket::BucketUrl;
use crate::replica::continuous::DEFAULT_SHIP_INTERVAL;
use crate::stamper::StamperConfig;

/// Default `--rpc-port`, the Python otsd's.
pub const DEFAULT_RPC_PORT: u16 = 14788;
/// Largest `--btc-conf-target`: the most blocks Bitcoin Core's `estimatesmartfee` accepts.
pub const MAX_CONF_TARGET: i64 = 1008;
/// Default `--btc-rpc-timeout`, seconds.
pub const DEFAULT_BTC_RPC_TIMEOUT_SECS: u64 = 30;
/// Largest `--btc-rpc-timeout`: a day.
pub const MAX_BTC_RPC_TIMEOUT_SECS: u64 = 24 * 60 * 60;
/// Default `--rpc-address`.
pub const DEFAULT_RPC_ADDRESS: &str = "localhost";
/// Default `--btc-poll-interval-ms`.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 5_000;
/// Default `--dev-block-interval-ms`.
pub const DEFAULT_DEV_BLOCK_INTERVAL_MS: u64 = 5_000;
/// Smallest `--btc-poll-interval-ms`: the stamper must not hammer the node.
pub const MIN_POLL_INTERVAL_MS: u64 = 10;
/// Smallest `--dev-block-interval-ms`.
pub const MIN_DEV_BLOCK_INTERVAL_MS: u64 = 100;
/// Largest interval flag in milliseconds (`--btc-poll-interval-ms`, `--dev-block-interval-ms`,
/// `--min-round-interval-ms`): an hour.
pub const MAX_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// Largest `--btc-min-tx-interval`: a year (twice it, the randomized maximum, must still be a time).
pub const MAX_MIN_TX_INTERVAL_SECS: u64 = 365 * 24 * 60 * 60;
/// Default `--mirror-poll-ms`.
pub const DEFAULT_MIRROR_POLL_MS: u64 = 100;
/// Default `--max-queued-digests`.
pub const DEFAULT_MAX_QUEUED_DIGESTS: usize = 100_000;
/// Largest `--max-queued-digests`: each waiting digest holds a request and up to a few hundred
/// bytes.
pub const MAX_MAX_QUEUED_DIGESTS: u64 = 10_000_000;
/// Largest `--max-pending` (commitments in one stamping transaction).
pub const MAX_MAX_PENDING: u64 = 100_000_000;
/// Default `--debug-file-max-size`, bytes (the Python otsd's).
pub const DEFAULT_DEBUG_FILE_MAX_SIZE: u64 = 10_000_000;
/// Default `--debug-file-backup-count` (the Python otsd's).
pub const DEFAULT_DEBUG_FILE_BACKUP_COUNT: u32 = 10;
/// Largest `--debug-file-backup-count`.
pub const MAX_DEBUG_FILE_BACKUP_COUNT: i64 = 10_000;
/// Default `--explorer-url` (the Python otsd's).
pub const DEFAULT_EXPLORER_URL: &str = "https://mempool.space";
/// Largest `--max-connections`: far beyond any file-descriptor limit.
pub const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
/// Largest `--header-timeout`, seconds: an hour.
pub const MAX_HEADER_TIMEOUT_SECS: u64 = 60 * 60;
/// Largest `--segment-size-mib`: a segment is preallocated to this size, 1 TiB is absurd already.
pub const MAX_SEGMENT_SIZE_MIB: u64 = 1 << 20;

/// OpenTimestamps calendar server (a drop-in replacement for the Python otsd).
///
/// Reads `uri`, `donation_addr` and `hmac-key` from the calendar directory (create one with
/// `otsctl init`) and keeps its event log in DIR/log. Stops cleanly on SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "otsd", version)]
// As Python's argparse: a repeated flag is no error, the last value wins.
#[command(args_override_self = true)]
#[command(mut_arg("btc_rpc", |a| a.help(
    "Bitcoin Core RPC URL, `http://USER:PASS@HOST:PORT/`; without it the node is found as the \
     Python otsd finds it: ~/.bitcoin/bitcoin.conf (rpcconnect, rpcport, rpcuser, rpcpassword, \
     datadir) and the network's cookie file")))]
pub struct OtsdArgs {
    /// Calendar directory [default: ~/.otsd/calendar]
    #[arg(short = 'c', long = "calendar", value_name = "DIR")]
    pub calendar: Option<PathBuf>,
    /// Address to serve the HTTP API on
    #[arg(long, default_value = DEFAULT_RPC_ADDRESS, value_name = "ADDR")]
    pub rpc_address: String,
    /// Port to serve the HTTP API on (0 picks a free one)
    #[arg(long, default_value_t = DEFAULT_RPC_PORT, value_name = "PORT")]
    pub rpc_port: u16,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// A throw-away local calendar for client developers: temporary directory, a regtest bitcoind
    /// (built first if none is found), a funded stamper key and a block mined every few seconds
    #[arg(long)]
    pub dev: bool,
    /// With --dev: milliseconds between mined blocks
    #[arg(long, default_value_t = DEFAULT_DEV_BLOCK_INTERVAL_MS, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(MIN_DEV_BLOCK_INTERVAL_MS..=MAX_INTERVAL_MS))]
    pub dev_block_interval_ms: u64,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Do not stamp: accept digests and serve proofs without any Bitcoin node (proofs stay
    /// pending until a stamping otsd runs on this calendar)
    #[arg(long, conflicts_with_all = ["btc_rpc", "dev"])]
    pub intake_only: bool,
    /// Sign with the node's Bitcoin Core wallet (listunspent, getrawchangeaddress,
    /// signrawtransactionwithwallet) instead of the calendar's own key; name the wallet in
    /// --btc-rpc (`.../wallet/NAME`) if the node has several
    #[arg(long)]
    pub btc_wallet: bool,
    /// Seconds to wait for each Bitcoin Core RPC answer (scantxoutset, which reads the whole UTXO
    /// set, waits at least 10 minutes)
    #[arg(long, default_value_t = DEFAULT_BTC_RPC_TIMEOUT_SECS, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_BTC_RPC_TIMEOUT_SECS))]
    pub btc_rpc_timeout: u64,
    /// Milliseconds between the stamper's looks at the node
    #[arg(long, default_value_t = DEFAULT_POLL_INTERVAL_MS, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(MIN_POLL_INTERVAL_MS..=MAX_INTERVAL_MS))]
    pub btc_poll_interval_ms: u64,
    /// Minimum relay feerate, sat/vB
    #[arg(long, value_name = "FEERATE", value_parser = SatPerVb::parse,
          default_value_t = SatPerVb { sat_per_kvb: StamperConfig::DEFAULT.min_relay_sat_per_kvb })]
    pub btc_min_relay_feerate: SatPerVb,
    /// Confirmation target for the first transaction of a cycle (1..=1008); later ones are RBF bumps
    #[arg(long, default_value_t = StamperConfig::DEFAULT.conf_target, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=MAX_CONF_TARGET))]
    pub btc_conf_target: u16,
    #[command(flatten)]
    pub confirmations: ConfirmationsArgs,
    /// Minimum seconds between stamping cycles (randomized up to twice this)
    #[arg(long, default_value_t = StamperConfig::DEFAULT.min_tx_interval_secs, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_MIN_TX_INTERVAL_SECS))]
    pub btc_min_tx_interval: u64,
    /// Maximum transaction fee, BTC
    #[arg(long, value_name = "FEE", value_parser = Btc::parse,
          default_value_t = Btc { sat: StamperConfig::DEFAULT.max_fee_sat })]
    pub btc_max_fee: Btc,
    /// Most pending commitments (rounds) one stamping transaction covers, as the Python otsd's
    /// --max-pending; later ones wait for the next transaction
    #[arg(long, default_value_t = StamperConfig::DEFAULT.max_pending, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MAX_PENDING))]
    pub max_pending: u64,
    /// Most digests waiting for the next round; beyond it POST /digest answers 503 with Retry-After
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUED_DIGESTS, value_name = "N",
          value_parser = usize_in(1..=MAX_MAX_QUEUED_DIGESTS))]
    pub max_queued_digests: usize,
    /// Minimum milliseconds between rounds (0: seal a round as soon as the previous one is on disk)
    #[arg(long, default_value_t = 0, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_INTERVAL_MS))]
    pub min_round_interval_ms: u64,
    /// Most HTTP connections served at once (further ones wait in the listen backlog)
    #[arg(long, default_value_t = ServerOptions::DEFAULT.max_connections, value_name = "N",
          value_parser = usize_in(1..=MAX_MAX_CONNECTIONS))]
    pub max_connections: usize,
    /// Seconds a client may take to send request headers, or stay idle between requests
    #[arg(long, default_value_t = ServerOptions::DEFAULT.header_timeout.as_secs(),
          value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_HEADER_TIMEOUT_SECS))]
    pub header_timeout: u64,
    /// Size at which a log segment is sealed and a new one started, in MiB (the projection is
    /// checkpointed at each: start-up folds at most one segment)
    #[arg(long, default_value_t = DEFAULT_SEGMENT_SIZE >> 20, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_SEGMENT_SIZE_MIB))]
    pub segment_size_mib: u64,
    /// Also append logs to this file (`~` is expanded, as the Python otsd does), rotated by size
    /// as Python's: FILE.1 is the newest old file, FILE.N the oldest
    #[arg(long, value_name = "FILE")]
    pub debug_file: Option<String>,
    /// Rotate the debug file before it would grow beyond this many bytes (0: never rotate)
    #[arg(long, default_value_t = DEFAULT_DEBUG_FILE_MAX_SIZE, value_name = "BYTES")]
    pub debug_file_max_size: u64,
    /// Old debug files kept (FILE.1 .. FILE.N); 0 never rotates, as Python's handler
    #[arg(long, default_value_t = DEFAULT_DEBUG_FILE_BACKUP_COUNT, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=MAX_DEBUG_FILE_BACKUP_COUNT))]
    pub debug_file_backup_count: u32,
    /// Time stamps in the debug file in UTC instead of local time
    #[arg(long)]
    pub debug_file_gmtime: bool,
    /// File holding a Lightning invoice without amount, shown for donations (with its QR code) on
    /// the info page; read at each request, so it can be replaced while otsd runs
    #[arg(long, value_name = "FILE")]
    pub lightning_invoice_file: Option<PathBuf>,
    /// Log JSON lines (one object per event) instead of human-readable lines
    #[arg(long)]
    pub log_json: bool,
    /// Serve /metrics, /healthz and /readyz on this HOST:PORT instead of the API address (the API
    /// then does not serve /metrics)
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_address: Option<String>,
    /// Raise the pending_too_old alarm (/readyz, /metrics) when the oldest pending round is older
    /// than this [default: twice --btc-min-tx-interval, at least 2 minutes]
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_MIN_TX_INTERVAL_SECS))]
    pub alarm_pending_secs: Option<u64>,
    /// Block explorer URL prefix for links on the info page (the page appends /tx/TXID,
    /// /block/HASH, /address/ADDR); an empty value shows no links
    #[arg(long, value_name = "URL", default_value = DEFAULT_EXPLORER_URL)]
    pub explorer_url: String,
    /// Ship the log continuously to s3://BUCKET/PREFIX (sealed segments once, verified; the open
    /// segment's new records every --ship-interval-ms). Credentials and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP.
    /// `otsctl recover DIR --from s3://BUCKET/PREFIX` reads it back
    #[arg(long, value_name = "S3_URL", value_parser = parse_bucket_url)]
    pub ship_to: Option<BucketUrl>,
    /// With --ship-to: milliseconds between shipping steps (how far behind the bucket may be)
    #[arg(long, value_name = "MS",
          default_value_t = DEFAULT_SHIP_INTERVAL.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(MIN_SHIP_INTERVAL_MS..=MAX_INTERVAL_MS))]
    pub ship_interval_ms: u64,
    /// Do not serve the log read-only under /log/ (segments.txt and segment files, for mirrors
    /// and `otsctl recover --from URL`)
    #[arg(long)]
    pub no_publish_log: bool,
    /// Run as a read-only mirror of the calendar at URL (its root, or its published log
    /// `http://HOST/log/`): follow its log live, verify and store it in DIR/log, serve proofs;
    /// POST /digest answers 503
    #[arg(long, value_name = "URL")]
    pub mirror_of: Option<String>,
    /// With --mirror-of: milliseconds to wait after a poll of the primary that brought nothing new
    #[arg(long, default_value_t = DEFAULT_MIRROR_POLL_MS, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_INTERVAL_MS))]
    pub mirror_poll_ms: u64,
    /// Be more verbose (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Be more quiet (repeatable)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl OtsdArgs {
    /// `-v` count minus `-q` count.
    pub fn verbosity(&self) -> i32 {
        i32::from(self.verbose) - i32::from(self.quiet)
    }
}

/// Smallest `--ship-interval-ms`: each step costs two requests to the bucket.
pub const MIN_SHIP_INTERVAL_MS: u64 = 100;

/// Parses `--ship-to`.
fn parse_bucket_url(s: &str) -> Result<BucketUrl, String> {
    BucketUrl::parse(s).map_err(|e| e.to_string())
}

/// A parser of `usize` flags in `range` (clap ranges are `u64`/`i64` only).
fn usize_in(range: std::ops::RangeInclusive<u64>) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(range)
}
