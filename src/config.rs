//! What `otsd` runs with, built from its parsed arguments ([`crate::cli::OtsdArgs`]).
//!
//! Data flows one way: `cli` (clap only) -> `config` (this module: conversion into the library's
//! option types) -> `server` (the running calendar). Every flag's default is defined once: by the
//! library module that owns the option, or in [`crate::cli::otsd`] for flags no module owns.
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::bitcoind::discover;
use crate::cli::{NetworkArgs, OtsdArgs};
use crate::http::server::ServerOptions;
use crate::stamper::driver::DriverConfig;
use crate::stamper::StamperConfig;
use crate::telemetry::{DebugFile, Rotation};

/// The Bitcoin network a calendar stamps on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    Mainnet,
    Testnet,
    Regtest,
}

impl Network {
    pub const ALL: [Network; 3] = [Network::Mainnet, Network::Testnet, Network::Regtest];

    /// The name on the info page and in `otsd`'s logs.
    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Regtest => "regtest",
        }
    }

    /// The `bitcoin` crate's network, for addresses.
    pub fn bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Mainnet => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A network name that is none of `mainnet`, `testnet`, `regtest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?} (mainnet, testnet or regtest)")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Network, UnknownNetwork> {
        Network::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| UnknownNetwork(s.to_owned()))
    }
}

impl From<&NetworkArgs> for Network {
    fn from(a: &NetworkArgs) -> Network {
        match (a.btc_testnet, a.btc_regtest) {
            (true, _) => Network::Testnet,
            (_, true) => Network::Regtest,
            _ => Network::Mainnet,
        }
    }
}

/// Everything `otsd` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub calendar_dir: PathBuf,
    pub rpc_address: String,
    pub rpc_port: u16,
    pub network: Network,
    /// Digests that may wait for a round before `POST /digest` answers 503.
    pub max_queued_digests: usize,
    pub min_round_interval: Duration,
    pub segment_size: u64,
    /// `--btc-min-confirmations`: when proofs are final.
    pub min_confirmations: u32,
    /// The stamper, when a Bitcoin node is configured.
    pub stamper: Option<DriverConfig>,
    pub http: ServerOptions,
    /// Metrics, health and info-page settings.
    pub ops: OpsOptions,
    /// `--ship-to`: ship the log into a bucket while running.
    pub ship_to: Option<crate::replica::continuous::ShipTo>,
    /// Publishing the log, and following another calendar's.
    pub replica: ReplicaOptions,
}

/// `--no-publish-log`, `--mirror-of`, `--mirror-poll-ms`.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Serve the log read-only under `GET /log/`.
    pub publish_log: bool,
    /// Run as a read-only mirror of this calendar (its root URL or its `/log/` URL).
    pub mirror_of: Option<String>,
    /// Pause after a poll of the primary that brought nothing new.
    pub mirror_poll: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            publish_log: true,
            mirror_of: None,
            mirror_poll: crate::replica::follow::DEFAULT_POLL,
        }
    }
}

/// What operators watch the calendar with.
#[derive(Debug, Clone, Default)]
pub struct OpsOptions {
    /// Serve `/metrics`, `/healthz` and `/readyz` on this `HOST:PORT` instead of the API address
    /// (the API then does not serve `/metrics`).
    pub metrics_address: Option<String>,
    /// `pending_too_old` threshold, seconds [default: two `--btc-min-tx-interval`s].
    pub pending_alarm_secs: Option<u64>,
    /// Block explorer URL prefix for transaction links on the info page.
    pub explorer_url: Option<String>,
    /// `--lightning-invoice-file`, read at each info-page request.
    pub lightning_invoice_file: Option<PathBuf>,
}

/// The default calendar directory, as the Python otsd's: `~/.otsd/calendar`.
pub fn default_calendar_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".otsd").join("calendar")
}

/// How often the `--dev` stamper looks at its node (blocks come every `--dev-block-interval-ms`).
pub const DEV_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The configuration `otsd` serves with. Without `--btc-rpc` (and without `--intake-only`) the
/// node is found as the Python otsd finds it ([`discover`]); only that step reads files, and its
/// failure (an unreadable bitcoin.conf, a bad `rpcport`) is the error.
pub fn serve_config(args: &OtsdArgs) -> Result<ServeConfig, discover::DiscoverError> {
    let node = node_for(args, Network::from(&args.network))?;
    Ok(build(args, node))
}

/// The configuration, given the node to stamp with.
fn build(args: &OtsdArgs, node: Option<(String, Option<PathBuf>)>) -> ServeConfig {
    let network = Network::from(&args.network);
    ServeConfig {
        calendar_dir: args
            .calendar
            .as_deref()
            .map(expand_tilde)
            .unwrap_or_else(default_calendar_dir),
        rpc_address: args.rpc_address.clone(),
        rpc_port: args.rpc_port,
        network,
        max_queued_digests: args.max_queued_digests,
        min_round_interval: Duration::from_millis(args.min_round_interval_ms),
        segment_size: args.segment_size_mib << 20,
        min_confirmations: args.confirmations.btc_min_confirmations,
        stamper: node.map(|(rpc_url, rpc_cookie)| DriverConfig {
            rpc_url,
            rpc_cookie,
            network: network.bitcoin(),
            policy: stamper_policy(args),
            poll_interval: Duration::from_millis(args.btc_poll_interval_ms),
            rpc_timeout: Duration::from_secs(args.btc_rpc_timeout),
            wallet: args.btc_wallet,
        }),
        http: ServerOptions {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout),
            ..ServerOptions::DEFAULT
        },
        ops: OpsOptions {
            metrics_address: args.metrics_address.clone(),
            pending_alarm_secs: args.alarm_pending_secs,
            explorer_url: Some(args.explorer_url.clone()).filter(|u| !u.is_empty()),
            lightning_invoice_file: args.lightning_invoice_file.as_deref().map(expand_tilde),
        },
        ship_to: args
            .ship_to
            .clone()
            .map(|url| crate::replica::continuous::ShipTo {
                url,
                interval: Duration::from_millis(args.ship_interval_ms),
            }),
        replica: ReplicaOptions {
            publish_log: !args.no_publish_log,
            mirror_of: args.mirror_of.clone(),
            mirror_poll: Duration::from_millis(args.mirror_poll_ms),
        },
    }
}

/// The node to stamp with, `(url, cookie file)`: `--btc-rpc`, nothing with `--intake-only`, else
/// the one bitcoin.conf points at.
fn node_for(
    args: &OtsdArgs,
    network: Network,
) -> Result<Option<(String, Option<PathBuf>)>, discover::DiscoverError> {
    if args.intake_only {
        return Ok(None);
    }
    if let Some(url) = &args.node.btc_rpc {
        return Ok(Some((url.clone(), args.node.btc_rpc_cookie.clone())));
    }
    let conf = discover::default_conf_file();
    let found = discover::discover(&conf, network)?;
    tracing::info!(
        node = %crate::bitcoind::rpc::redact(&found.url),
        from = %found.source,
        "no --btc-rpc: stamping with the node bitcoin.conf points at (--intake-only not to stamp)"
    );
    Ok(Some((found.url, found.cookie)))
}

/// The configuration for `--dev`: serve `calendar` on `port` of 127.0.0.1, stamping on the dev
/// node at `node_url` with no interval between cycles.
pub fn dev_serve_config(
    args: &OtsdArgs,
    calendar: PathBuf,
    port: u16,
    node_url: &str,
) -> ServeConfig {
    let mut cfg = build(args, None);
    cfg.calendar_dir = calendar;
    cfg.rpc_address = "127.0.0.1".into();
    cfg.rpc_port = port;
    cfg.network = Network::Regtest;
    let mut policy = stamper_policy(args);
    policy.min_tx_interval_secs = 0;
    cfg.stamper = Some(DriverConfig {
        rpc_url: node_url.to_owned(),
        rpc_cookie: None,
        network: Network::Regtest.bitcoin(),
        policy,
        poll_interval: DEV_POLL_INTERVAL,
        rpc_timeout: Duration::from_secs(args.btc_rpc_timeout),
        wallet: false,
    });
    cfg
}

fn stamper_policy(args: &OtsdArgs) -> StamperConfig {
    StamperConfig {
        conf_target: args.btc_conf_target,
        min_relay_sat_per_kvb: args.btc_min_relay_feerate.sat_per_kvb,
        max_fee_sat: args.btc_max_fee.sat,
        min_tx_interval_secs: args.btc_min_tx_interval,
        min_confirmations: args.confirmations.btc_min_confirmations,
        max_pending: args.max_pending,
    }
}

/// The debug file `otsd` logs to, if any (`--debug-file` and its companions).
pub fn debug_file(args: &OtsdArgs) -> Option<DebugFile> {
    args.debug_file.as_ref().map(|path| DebugFile {
        path: expand_tilde(Path::new(path)),
        rotation: Rotation {
            max_bytes: args.debug_file_max_size,
            backup_count: args.debug_file_backup_count,
        },
        gmtime: args.debug_file_gmtime,
    })
}

/// `~` or `~/...` with `$HOME` in front, as Python's `os.path.expanduser` (the Python otsd expands
/// its path flags, and unit files written for it may rely on that; systemd does not expand `~`).
pub fn expand_tilde(path: &Path) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    match path.strip_prefix("~") {
        Ok(rest) => match home() {
            Some(h) => h.join(rest),
            None => path.to_owned(),
        },
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn network_names_round_trip_and_unknown_names_are_refused() {
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>(), Ok(n));
        }
        assert_eq!(
            "signet".parse::<Network>(),
            Err(UnknownNetwork("signet".into()))
        );
        assert_eq!(
            UnknownNetwork("x".into()).to_string(),
            "unknown network \"x\" (mainnet, testnet or regtest)"
        );
    }

    #[test]
    fn defaults_give_the_library_defaults() {
        let args = OtsdArgs::parse_from(["otsd", "--btc-rpc", "http://u:p@127.0.0.1:1/"]);
        let cfg = serve_config(&args).unwrap();
        assert_eq!(cfg.network, Network::Mainnet);
        assert_eq!(cfg.segment_size, crate::log::writer::DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            cfg.min_confirmations,
            crate::projection::stamps::DEFAULT_MIN_CONFIRMATIONS
        );
        let http = ServerOptions::DEFAULT;
        assert_eq!(cfg.http.max_connections, http.max_connections);
        assert_eq!(cfg.http.header_timeout, http.header_timeout);
        let stamper = cfg.stamper.expect("--btc-rpc configures the stamper");
        assert_eq!(stamper.policy, StamperConfig::DEFAULT);
        assert_eq!(stamper.network, bitcoin::Network::Bitcoin);
    }

    #[test]
    fn flags_reach_the_configuration() {
        let args = OtsdArgs::parse_from([
            "otsd",
            "--btc-regtest",
            "--btc-rpc",
            "http://127.0.0.1:1/",
            "--btc-min-relay-feerate",
            "2.5",
            "--btc-max-fee",
            "0.5",
            "--segment-size-mib",
            "2",
            "--btc-min-confirmations",
            "3",
        ]);
        let cfg = serve_config(&args).unwrap();
        assert_eq!(cfg.network, Network::Regtest);
        assert_eq!(cfg.segment_size, 2 << 20);
        let stamper = cfg.stamper.expect("stamper");
        assert_eq!(stamper.network, bitcoin::Network::Regtest);
        assert_eq!(stamper.policy.min_relay_sat_per_kvb, 2_500);
        assert_eq!(stamper.policy.max_fee_sat, 50_000_000);
        assert_eq!(stamper.policy.min_confirmations, 3);
    }
}
