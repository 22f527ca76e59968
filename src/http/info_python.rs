//! The Python otsd's info-page fields, beside ours in the JSON form of `GET /` (flattened into
//! [`super::info::Info`]), so monitors written for a Python calendar keep reading it.
//!
//! Each field has the Python field's meaning; the differences are in the values' types only:
//! - a missing value is JSON `null` where Python writes the string `"None"`;
//! - counts and amounts are JSON numbers where Python writes `"1,234"` (`pending_commitments`,
//!   `balance`); `fees_in_last_week` is Python's string, in [`super::info::Info`];
//! - `balance` is the stamper's next coin (Python: the node wallet's confirmed balance, which
//!   otsd does not use), `address` the donation address as in Python;
//! - `transactions` lists the mined, not yet final stamping transactions (final ones live in the
//!   history on disk), newest first, each with Python's `txid`, `confirmations`, `fee` (negative
//!   satoshis, as Bitcoin Core's `listtransactions` gives it), `feerate` (sat/vB, two decimals)
//!   and `blockheight`;
//! - `address_qr` and `lightning_invoice_qr` (PNG in Python) are not given: the HTML page has
//!   the QR codes (SVG).
use serde::Serialize;

use super::info::MinedTx;
use crate::anchor::state::StamperState;

/// Largest `--lightning-invoice-file` read: an invoice is a few hundred bytes.
pub const MAX_LIGHTNING_INVOICE_LEN: u64 = 8 * 1024;

/// One entry of Python's `transactions`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PyTx {
    pub txid: String,
    pub confirmations: u32,
    /// Negative satoshis, as `listtransactions`.
    pub fee: i64,
    /// sat/vB, two decimals, as Python formats it.
    pub feerate: String,
    pub blockheight: u32,
}

/// The Python otsd's fields.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PythonFields {
    pub txs_waiting_for_confirmation: usize,
    /// Newest unmined stamping transaction (display byte order).
    pub most_recent_tx: Option<String>,
    /// How many earlier (replaced) versions of `most_recent_tx` were sent.
    pub prior_versions: usize,
    pub best_block: Option<String>,
    pub block_height: Option<u32>,
    pub balance: Option<u64>,
    pub address: String,
    pub transactions: Vec<PyTx>,
    pub time_between_transactions: Option<String>,
    pub lightning_invoice: Option<String>,
    pub explorer_url: Option<String>,
}

/// What [`PythonFields::from_state`] needs besides the stamper state.
pub struct Inputs<'a> {
    pub mined: &'a [MinedTx],
    pub balance_sat: Option<u64>,
    pub donation_address: &'a str,
    pub lightning_invoice: Option<String>,
    pub explorer_url: Option<String>,
    /// Stamping transactions mined in the last week, if the history can tell.
    pub txs_in_last_week: Option<u64>,
}

impl PythonFields {
    pub fn from_state(s: &StamperState, i: Inputs<'_>) -> PythonFields {
        let open = s.open_cycle();
        let tip = s.tip();
        PythonFields {
            txs_waiting_for_confirmation: i.mined.iter().filter(|t| !t.final_).count(),
            most_recent_tx: open.map(|c| display(&c.latest().txid)),
            prior_versions: open.map_or(0, |c| c.txs.len().saturating_sub(1)),
            best_block: tip.map(|t| display(&t.1)),
            block_height: tip.map(|t| t.0),
            balance: i.balance_sat,
            address: i.donation_address.to_owned(),
            transactions: py_txs(i.mined),
            time_between_transactions: i.txs_in_last_week.map(time_between),
            lightning_invoice: i.lightning_invoice,
            explorer_url: i.explorer_url,
        }
    }
}

/// Python's `str(round(168 / n, 2)) + " hours"`, `N/A` without transactions.
pub fn time_between(transactions: u64) -> String {
    if transactions == 0 {
        return "N/A".to_owned();
    }
    let hours = (168.0 / transactions as f64 * 100.0).round() / 100.0;
    format!("{hours:?} hours")
}

fn py_txs(mined: &[MinedTx]) -> Vec<PyTx> {
    mined
        .iter()
        .map(|m| PyTx {
            txid: m.txid.clone(),
            confirmations: m.confirmations,
            fee: -i64::try_from(m.fee_sat).unwrap_or(i64::MAX),
            feerate: format!("{:.2}", m.feerate_sat_per_vb),
            blockheight: m.height,
        })
        .collect()
}

fn display(hash: &[u8; 32]) -> String {
    let mut h = *hash;
    h.reverse();
    hex::encode(h)
}

/// The invoice in `path`, trimmed, as Python reads it at each request: `None` when the file is
/// missing (as Python), unreadable, empty or implausibly long (logged).
pub fn read_lightning_invoice(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("--lightning-invoice-file {}: {e}", path.display());
            return None;
        }
    };
    let mut text = String::new();
    if let Err(e) = f
        .take(MAX_LIGHTNING_INVOICE_LEN + 1)
        .read_to_string(&mut text)
    {
        tracing::warn!("--lightning-invoice-file {}: {e}", path.display());
        return None;
    }
    if text.len() as u64 > MAX_LIGHTNING_INVOICE_LEN {
        tracing::warn!(
            "--lightning-invoice-file {}: longer than {MAX_LIGHTNING_INVOICE_LEN} bytes, not shown",
            path.display()
        );
        return None;
    }
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_between_transactions_is_python_s_string() {
        assert_eq!(time_between(0), "N/A");
        assert_eq!(time_between(1), "168.0 hours");
        assert_eq!(time_between(28), "6.0 hours");
        assert_eq!(time_between(3), "56.0 hours");
        assert_eq!(time_between(5), "33.6 hours");
        assert_eq!(time_between(7 * 24 * 6), "0.17 hours");
    }

    #[test]
    fn the_invoice_file_is_read_trimmed_and_a_missing_one_is_no_invoice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ln");
        assert_eq!(read_lightning_invoice(&p), None);
        std::fs::write(&p, "lnbc1pexample\n").unwrap();
        assert_eq!(read_lightning_invoice(&p).as_deref(), Some("lnbc1pexample"));
        std::fs::write(&p, " \n").unwrap();
        assert_eq!(read_lightning_invoice(&p), None);
        std::fs::write(&p, vec![b'a'; 9000]).unwrap();
        assert_eq!(read_lightning_invoice(&p), None);
    }
}
