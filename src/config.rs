//! What `otsd` runs with, built from its parsed arguments ([`crate::cli::OtsdArgs`]).
//!
//! Data flows one way: `cli` (clap only) -> `config` (this module: conversion into the library's
//! option types) -> `server` (the running calendar). Every flag's default is defined once: by the
//! library module that owns the option, or in [`crate::cli::otsd`] for flags no module owns.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::cli::{NetworkArgs, OtsdArgs};
use crate::http::server::ServerOptions;
use crate::stamper::driver::DriverConfig;
use crate::stamper::StamperConfig;

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
    pub max_pending: usize,
    pub min_round_interval: Duration,
    pub segment_size: u64,
    /// `--btc-min-confirmations`: when proofs are final.
    pub min_confirmations: u32,
    /// The stamper, when a Bitcoin node is configured.
    pub stamper: Option<DriverConfig>,
    pub http: ServerOptions,
    /// Metrics, health and info-page settings.
    pub ops: OpsOptions,
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

/// The configuration `otsd` serves with.
pub fn serve_config(args: &OtsdArgs) -> ServeConfig {
    let network = Network::from(&args.network);
    ServeConfig {
        calendar_dir: args.calendar.clone().unwrap_or_else(default_calendar_dir),
        rpc_address: args.rpc_address.clone(),
        rpc_port: args.rpc_port,
        network,
        max_pending: args.max_pending,
        min_round_interval: Duration::from_millis(args.min_round_interval_ms),
        segment_size: args.segment_size_mib << 20,
        min_confirmations: args.confirmations.btc_min_confirmations,
        stamper: args.node.btc_rpc.as_ref().map(|url| DriverConfig {
            rpc_url: url.clone(),
            rpc_cookie: args.node.btc_rpc_cookie.clone(),
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
            explorer_url: args.explorer_url.clone(),
        },
        replica: ReplicaOptions {
            publish_log: !args.no_publish_log,
            mirror_of: args.mirror_of.clone(),
            mirror_poll: Duration::from_millis(args.mirror_poll_ms),
        },
    }
}

/// The configuration for `--dev`: serve `calendar` on `port` of 127.0.0.1, stamping on the dev
/// node at `node_url` with no interval between cycles.
pub fn dev_serve_config(
    args: &OtsdArgs,
    calendar: PathBuf,
    port: u16,
    node_url: &str,
) -> ServeConfig {
    let mut cfg = serve_config(args);
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
        let cfg = serve_config(&args);
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
        let cfg = serve_config(&args);
        assert_eq!(cfg.network, Network::Regtest);
        assert_eq!(cfg.segment_size, 2 << 20);
        let stamper = cfg.stamper.expect("stamper");
        assert_eq!(stamper.network, bitcoin::Network::Regtest);
        assert_eq!(stamper.policy.min_relay_sat_per_kvb, 2_500);
        assert_eq!(stamper.policy.max_fee_sat, 50_000_000);
        assert_eq!(stamper.policy.min_confirmations, 3);
    }
}
