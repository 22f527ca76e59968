//! Argument groups that both binaries take, each defined once and flattened
//! (`#[command(flatten)]`) into the commands that use it, and the value parsers that refuse
//! out-of-range flag values with a message naming the accepted range.
use std::fmt;
use std::path::PathBuf;

use clap::Args;

use crate::projection::stamps::DEFAULT_MIN_CONFIRMATIONS;

/// `--btc-testnet` / `--btc-regtest` (mainnet without either).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct NetworkArgs {
    /// Use Bitcoin testnet rather than mainnet
    #[arg(long, conflicts_with = "btc_regtest")]
    pub btc_testnet: bool,
    /// Use Bitcoin regtest rather than mainnet
    #[arg(long)]
    pub btc_regtest: bool,
}

/// How to reach a Bitcoin Core node: `--btc-rpc` and `--btc-rpc-cookie`.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeArgs {
    /// Bitcoin Core RPC URL, `http://USER:PASS@HOST:PORT/`
    #[arg(long, value_name = "URL")]
    pub btc_rpc: Option<String>,
    /// Bitcoin Core cookie file, for a --btc-rpc URL without credentials
    #[arg(long, value_name = "FILE", requires = "btc_rpc")]
    pub btc_rpc_cookie: Option<PathBuf>,
}

/// A range of sequence numbers: `--from SEQ` and `--to SEQ`, both inclusive and optional.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct SeqRangeArgs {
    /// First sequence number
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Last sequence number
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
}

/// `--btc-min-confirmations`: otsd's finality depth, which `otsctl replay` must repeat because a
/// projection checkpoint is only used with the value it was folded with.
#[derive(Debug, Clone, Copy, Args)]
pub struct ConfirmationsArgs {
    /// Confirmations before a proof is final and served (must be greater than 1)
    #[arg(long, default_value_t = DEFAULT_MIN_CONFIRMATIONS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    pub btc_min_confirmations: u32,
}

/// A feerate flag given in sat/vB (decimals allowed), held in sat per 1000 vB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SatPerVb {
    pub sat_per_kvb: u64,
}

/// Largest accepted feerate flag, sat/vB.
pub const MAX_FEERATE_SAT_PER_VB: f64 = 1_000_000.0;

impl SatPerVb {
    /// Value parser: a finite, non-negative number of sat/vB up to [`MAX_FEERATE_SAT_PER_VB`].
    pub fn parse(s: &str) -> Result<SatPerVb, String> {
        let v = parse_decimal(s, MAX_FEERATE_SAT_PER_VB, "sat/vB")?;
        Ok(SatPerVb {
            sat_per_kvb: (v * 1000.0) as u64,
        })
    }
}

impl fmt::Display for SatPerVb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.sat_per_kvb, 3)
    }
}

/// An amount flag given in BTC (decimals allowed), held in satoshis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Btc {
    pub sat: u64,
}

/// Largest accepted amount flag: every bitcoin there will ever be.
pub const MAX_BTC: f64 = 21_000_000.0;

impl Btc {
    /// Value parser: a finite, non-negative number of BTC up to [`MAX_BTC`].
    pub fn parse(s: &str) -> Result<Btc, String> {
        let v = parse_decimal(s, MAX_BTC, "BTC")?;
        Ok(Btc {
            sat: (v * 1e8) as u64,
        })
    }
}

impl fmt::Display for Btc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.sat, 8)
    }
}

/// A finite number in `0..=max`; NaN, infinities and negative values are refused.
fn parse_decimal(s: &str, max: f64, unit: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of {unit}"))?;
    if !v.is_finite() || !(0.0..=max).contains(&v) {
        return Err(format!("{s} is not in 0..={max} {unit}"));
    }
    Ok(v)
}

/// Writes `units / 10^decimals` in decimal, without trailing zeros (so defaults show as `1`, `0.001`).
fn write_fixed(f: &mut fmt::Formatter<'_>, units: u64, decimals: u32) -> fmt::Result {
    let scale = 10u64.pow(decimals);
    let (whole, frac) = (units / scale, units % scale);
    if frac == 0 {
        return write!(f, "{whole}");
    }
    let digits = format!("{frac:0width$}", width = decimals as usize);
    write!(f, "{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_print_as_operators_write_them() {
        assert_eq!(SatPerVb { sat_per_kvb: 1000 }.to_string(), "1");
        assert_eq!(SatPerVb { sat_per_kvb: 1500 }.to_string(), "1.5");
        assert_eq!(Btc { sat: 100_000 }.to_string(), "0.001");
        assert_eq!(
            Btc {
                sat: 2_100_000_000_000_000
            }
            .to_string(),
            "21000000"
        );
    }

    #[test]
    fn printed_values_parse_back_to_themselves() {
        for sat in [0, 100_000, 50_000_000, 2_100_000_000_000_000] {
            assert_eq!(Btc::parse(&Btc { sat }.to_string()), Ok(Btc { sat }));
        }
        for sat_per_kvb in [0, 1000, 1500, 2_000] {
            let v = SatPerVb { sat_per_kvb };
            assert_eq!(SatPerVb::parse(&v.to_string()), Ok(v));
        }
    }

    #[test]
    fn negative_nan_infinite_and_huge_values_are_refused() {
        for bad in ["-1", "-0.5", "NaN", "inf", "-inf", "1e300", "x", ""] {
            assert!(Btc::parse(bad).is_err(), "{bad}");
            assert!(SatPerVb::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Btc::parse("-0.1"),
            Err("-0.1 is not in 0..=21000000 BTC".to_owned())
        );
    }
}
