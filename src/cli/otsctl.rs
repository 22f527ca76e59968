//! `otsctl`'s arguments: one struct per subcommand.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::shared::{ConfirmationsArgs, NetworkArgs, NodeArgs, SeqRangeArgs};

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
    /// Copy the calendar's log segments into a mirror directory or an S3 bucket
    /// (s3://BUCKET/PREFIX), incrementally (for `recover`). Safe to run from cron while otsd runs;
    /// serve a mirror directory with any static HTTP server to make it a URL replica
    Ship(ShipArgs),
    /// Rebuild a lost or damaged log from an untrusted replica (a mirror directory, URL or bucket): keeps
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
    /// Take over a Python otsd calendar: create the otsd calendar DIR from PYTHON_CALENDAR_DIR
    /// (only read; its LevelDB is read through a copy, so stop the Python otsd first). Copies
    /// uri, donation_addr and hmac-key byte for byte and writes every journal commitment to the
    /// log in journal order: those with a complete proof in the Python database are served with the
    /// Python server's exact answer, the others are pending and stamped by otsd. Refuses an
    /// existing DIR; an interrupted import can simply be run again
    ImportOtsd(ImportOtsdArgs),
    /// Make a mirror (`otsd --mirror-of`) the primary, after the primary is lost for good: needs
    /// the calendar's hmac-key in DIR, verifies the whole copy with it, and refuses while the old
    /// primary still answers at its URL. Stop the mirror first; then start `otsd -c DIR`
    Promote(PromoteArgs),
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The mirror's directory
    pub dir: PathBuf,
    /// Promote even if the old primary's URL still answers (only when that URL now reaches some
    /// other server: two primaries on one history fork it)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImportOtsdArgs {
    /// The Python calendar directory (uri, donation_addr, hmac-key, journal, db/)
    pub python_calendar_dir: PathBuf,
    /// The new otsd calendar directory (must not exist)
    pub dir: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
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
#[command(mut_arg("from", |a| a.help(
    "First sequence number to check and report (the log is still read from its start)")))]
#[command(mut_arg("to", |a| a.help("Last sequence number to check and report")))]
#[command(mut_arg("btc_rpc", |a| a.help(
    "Bitcoin Core RPC URL, `http://USER:PASS@HOST:PORT/`: also check that every confirmation \
     still standing is in the node's best chain, with the recorded Merkle root, transactions \
     and tip")))]
pub struct VerifyArgs {
    /// The calendar directory
    pub dir: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub range: SeqRangeArgs,
    /// Do not read hmac-key: skip the HMAC chain and commitment MACs
    #[arg(long)]
    pub no_key: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, Args)]
#[command(mut_arg("from", |a| a.help("First sequence number to show")))]
#[command(mut_arg("to", |a| a.help("Last sequence number to show")))]
pub struct InspectArgs {
    /// The calendar directory
    pub dir: PathBuf,
    #[command(flatten)]
    pub range: SeqRangeArgs,
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
#[command(mut_arg("btc_min_confirmations", |a| a.help(
    "otsd's --btc-min-confirmations: otsd only uses a checkpoint folded with its own value")))]
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
    #[command(flatten)]
    pub confirmations: ConfirmationsArgs,
    /// Plain progress lines even on a terminal (no progress bar)
    #[arg(long)]
    pub no_bar: bool,
}

#[derive(Debug, Args)]
#[command(mut_arg("btc_testnet", |a| a.help("Show the testnet address")))]
#[command(mut_arg("btc_regtest", |a| a.help("Show the regtest address")))]
pub struct AddressArgs {
    /// The calendar directory
    pub dir: PathBuf,
    #[command(flatten)]
    pub network: NetworkArgs,
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
    /// The mirror directory (created if needed), or s3://BUCKET/PREFIX (credentials and endpoint
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP); it receives the segments and `segments.txt` (name, length, sha256,
    /// sealed|open per segment), never the hmac-key
    #[arg(long, value_name = "MIRROR_DIR|S3_URL")]
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
    /// directory, the plain-HTTP URL of a mirror (`http://HOST[:PORT]/PATH`; no https: the
    /// data is verified anyway), or a bucket mirror `s3://BUCKET/PREFIX` (credentials from the
    /// AWS_* environment variables, as for `ship`)
    #[arg(long, value_name = "DIR_OR_URL")]
    pub from: String,
    /// Only report what would be kept and rejected; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}
