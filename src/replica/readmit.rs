//! `otsctl readmit`: put commitments that clients hold back into the calendar after a loss.
//!
//! When rounds are lost from the log (beyond what a replica could restore), clients still hold
//! `.ots` files with a pending attestation of this calendar on a commitment `time || root || mac`
//! that will never be stamped. The MAC is keyed with the calendar's `hmac-key`, so it proves that
//! this calendar issued the commitment: a commitment whose MAC verifies can be put back, one
//! [`Event::CommitmentReadmitted`] per commitment, each taking the next round number. From then on
//! it is a round like any other: the stamper commits to it and `GET /timestamp` serves its proof,
//! so the clients' `ots upgrade` works unchanged. Nothing else in a file is trusted or kept.
//!
//! Per commitment under a pending attestation whose URI is the calendar's `uri`:
//! - accepted: 44 bytes, MAC verifies, unknown to the log and not earlier in this run;
//! - already known: the log has it (a round, pending or stamped), or an earlier file of this run;
//! - rejected: the file is unreadable or no timestamp file, has no pending attestation of this
//!   calendar, the message is not 44 bytes, or the MAC does not verify.
//!
//! All accepted commitments are appended in one group commit (one fsync), after every file was
//! examined; a rejected file does not hold back the others, and a second run is harmless (what was
//! accepted is then already known). The tool takes the log's writer lock, so it runs only while
//! otsd is stopped, and otsd picks the rounds up when it replays the log at start-up. There is no
//! HTTP endpoint on purpose: round numbers are handed out by the running aggregator, and anyone
//! could otherwise make the calendar pay to stamp any commitment it ever issued.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::{hex, replay, ToolError};
use crate::calendar::commitment::{Commitment, COMMITMENT_LEN};
use crate::calendar::dir::{CalendarDir, DirError};
use crate::calendar::mac::CommitmentMac;
use crate::events::codec;
use crate::events::Event;
use crate::log::Progress;
use crate::log::{LogError, LogKey, Writer, WriterOptions};
use crate::ots::{Attestation, DetachedTimestampFile};
use crate::projection::{Projection, Status};

/// Largest `.ots` file read. Client proofs are a few kilobytes; the bound keeps a hostile file
/// from making the decoder build a huge tree (see [`crate::ots::timestamp`]).
pub const MAX_OTS_FILE_LEN: u64 = 1 << 20;
/// Most readmissions in one log record (about 70 bytes each, far below the record limit).
pub const MAX_EVENTS_PER_RECORD: usize = 100_000;

/// Why `otsctl readmit` could not run at all (files it refuses are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ReadmitError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("{}: the log is locked by another writer; stop otsd before readmitting", path.display())]
    Locked { path: PathBuf },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Ctl(#[from] ToolError),
    #[error("encoding a readmission: {0}")]
    Codec(#[from] codec::CodecError),
}

/// What happened to one commitment (or to a file with none to offer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The file as given (lossily UTF-8).
    pub file: String,
    /// The commitment (hex), when the file has one under this calendar's pending attestation.
    pub commitment: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Readmitted as `round` (with `--dry-run`: would be).
    Accepted {
        round: u64,
    },
    /// The calendar has it as `round`: `pending`, `mined` or `complete` in the log, or `accepted`
    /// from an earlier file of this run.
    AlreadyKnown {
        round: u64,
        status: &'static str,
    },
    Rejected {
        reason: Rejection,
        detail: String,
    },
}

/// Why a file or commitment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The file cannot be read, or is larger than [`MAX_OTS_FILE_LEN`].
    Unreadable,
    /// Not a detached timestamp file our parser accepts.
    Parse,
    /// No pending attestation with this calendar's URI.
    NoPendingAttestation,
    /// The message under the pending attestation is not a 44-byte commitment.
    WrongLength,
    /// The commitment's MAC was not made with this calendar's key (another calendar, or altered).
    BadMac,
}

impl Rejection {
    /// The name in reports (as in the JSON).
    pub fn name(self) -> &'static str {
        match self {
            Rejection::Unreadable => "unreadable",
            Rejection::Parse => "parse error",
            Rejection::NoPendingAttestation => "no pending attestation for this calendar",
            Rejection::WrongLength => "wrong length",
            Rejection::BadMac => "bad MAC",
        }
    }
}

/// What a run examined, decided and (unless dry) wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub calendar_uri: String,
    pub dry_run: bool,
    pub entries: Vec<Entry>,
    pub accepted: u64,
    pub already_known: u64,
    pub rejected: u64,
    /// Sequence number of the first readmission written (none if nothing was written).
    pub first_seq: Option<u64>,
}

impl Report {
    /// Whether every file offered something acceptable or already known.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0
    }
}

/// Examines `files` against the calendar in `calendar` and, unless `dry_run`, appends the accepted
/// commitments to its log. `progress` hears about the replay of the log.
pub fn readmit(
    calendar: &Path,
    files: &[PathBuf],
    dry_run: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, ReadmitError> {
    let dir = CalendarDir::load(calendar)?;
    // Lock first: the log read below must be the one appended to.
    let writer = if dry_run {
        None
    } else {
        Some(open_writer(&dir)?)
    };
    let view = known(&dir, progress)?;
    let mut plan = Plan::new(&dir, &view);
    for file in files {
        plan.examine_file(file);
    }
    let mut report = plan.report(dry_run);
    if let Some(mut writer) = writer {
        report.first_seq = append(&mut writer, &plan.events)?;
    }
    Ok(report)
}

fn open_writer(dir: &CalendarDir) -> Result<Writer, ReadmitError> {
    let key = LogKey::derive(&dir.hmac_key);
    match Writer::open(&dir.log_dir(), key, WriterOptions::default()) {
        Ok((writer, _)) => Ok(writer),
        Err(LogError::Io { path, source, .. })
            if source.kind() == std::io::ErrorKind::WouldBlock =>
        {
            Err(ReadmitError::Locked { path })
        }
        Err(e) => Err(e.into()),
    }
}

/// The calendar's projection; empty when a dry run finds no log at all.
fn known(dir: &CalendarDir, progress: &mut dyn FnMut(&Progress)) -> Result<Projection, ToolError> {
    if !dir.log_dir().is_dir() {
        return Ok(Projection::default());
    }
    let output = replay::Output::Nowhere;
    let min_confirmations = crate::projection::stamps::DEFAULT_MIN_CONFIRMATIONS;
    Ok(replay::replay(&dir.path, &output, min_confirmations, progress)?.0)
}

/// One group commit of all readmissions; the first sequence number if anything was written.
fn append(writer: &mut Writer, events: &[Event]) -> Result<Option<u64>, ReadmitError> {
    let encoded = events
        .iter()
        .map(codec::encode)
        .collect::<Result<Vec<_>, _>>()?;
    let batches: Vec<Vec<Vec<u8>>> = encoded
        .chunks(MAX_EVENTS_PER_RECORD)
        .map(<[_]>::to_vec)
        .collect();
    let ranges = writer.append_batches(&batches)?;
    Ok(ranges.first().map(|r| r.first))
}

/// The decisions of a run, made against the log's projection before anything is written.
struct Plan<'a> {
    uri: &'a str,
    mac: CommitmentMac,
    view: &'a Projection,
    /// Commitments accepted in this run, with their rounds.
    accepted: HashMap<Commitment, u64>,
    events: Vec<Event>,
    entries: Vec<Entry>,
}

impl<'a> Plan<'a> {
    fn new(dir: &'a CalendarDir, view: &'a Projection) -> Plan<'a> {
        Plan {
            uri: &dir.uri,
            mac: CommitmentMac::new(&dir.hmac_key),
            view,
            accepted: HashMap::new(),
            events: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn examine_file(&mut self, file: &Path) {
        let messages = read_ots(file).and_then(|ots| pending_messages(&ots, self.uri));
        match messages {
            Ok(messages) => {
                for m in messages {
                    let outcome = self.decide(&m);
                    self.push(file, Some(hex(&m)), outcome);
                }
            }
            Err((reason, detail)) => self.push(file, None, Outcome::Rejected { reason, detail }),
        }
    }

    fn push(&mut self, file: &Path, commitment: Option<String>, outcome: Outcome) {
        self.entries.push(Entry {
            file: file.to_string_lossy().into_owned(),
            commitment,
            outcome,
        });
    }

    fn decide(&mut self, message: &[u8]) -> Outcome {
        let Ok(commitment) = Commitment::try_from(message) else {
            let detail = format!(
                "the message under the pending attestation is {} bytes, not a {COMMITMENT_LEN}-byte commitment",
                message.len()
            );
            return rejected(Rejection::WrongLength, detail);
        };
        if !self.mac.verify(&commitment) {
            let detail =
                "the commitment's MAC is not this calendar's (issued by another calendar, \
                          or altered)";
            return rejected(Rejection::BadMac, detail.to_owned());
        }
        if let Some(known) = known_round(self.view.status(&commitment)) {
            return known;
        }
        if let Some(&round) = self.accepted.get(&commitment) {
            return Outcome::AlreadyKnown {
                round,
                status: "accepted",
            };
        }
        let round = self.view.next_round() + self.events.len() as u64;
        self.accepted.insert(commitment, round);
        self.events.push(Event::CommitmentReadmitted {
            round,
            commitment: commitment.to_vec(),
        });
        Outcome::Accepted { round }
    }

    fn report(&self, dry_run: bool) -> Report {
        let count =
            |f: fn(&Outcome) -> bool| self.entries.iter().filter(|e| f(&e.outcome)).count() as u64;
        Report {
            calendar_uri: self.uri.to_owned(),
            dry_run,
            entries: self.entries.clone(),
            accepted: count(|o| matches!(o, Outcome::Accepted { .. })),
            already_known: count(|o| matches!(o, Outcome::AlreadyKnown { .. })),
            rejected: count(|o| matches!(o, Outcome::Rejected { .. })),
            first_seq: None,
        }
    }
}

fn rejected(reason: Rejection, detail: String) -> Outcome {
    Outcome::Rejected { reason, detail }
}

fn known_round(status: Status) -> Option<Outcome> {
    let (round, status) = match status {
        // The plan folds the log in memory, which has no history to fail.
        Status::Unknown | Status::Unavailable(_) => return None,
        Status::Pending { round } => (round, "pending"),
        Status::Mined { round, .. } => (round, "mined"),
        Status::Complete { round, .. } => (round, "complete"),
        Status::Imported { round, .. } => (round, "imported"),
    };
    Some(Outcome::AlreadyKnown { round, status })
}

type FileRejection = (Rejection, String);

/// Reads and parses a `.ots` file of at most [`MAX_OTS_FILE_LEN`] bytes.
fn read_ots(file: &Path) -> Result<DetachedTimestampFile, FileRejection> {
    let unreadable = |e: std::io::Error| (Rejection::Unreadable, e.to_string());
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(unreadable)?
        .take(MAX_OTS_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_OTS_FILE_LEN {
        let detail = format!("larger than {MAX_OTS_FILE_LEN} bytes: not a client's proof");
        return Err((Rejection::Unreadable, detail));
    }
    DetachedTimestampFile::from_bytes(&bytes).map_err(|e| (Rejection::Parse, e.to_string()))
}

/// The distinct messages under a pending attestation of `uri`, in tree order.
fn pending_messages(ots: &DetachedTimestampFile, uri: &str) -> Result<Vec<Vec<u8>>, FileRejection> {
    let mut ours: Vec<Vec<u8>> = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    for (msg, att) in ots.timestamp.all_attestations() {
        let Attestation::Pending { uri: u } = att else {
            continue;
        };
        if u != uri {
            if !others.contains(&u.as_str()) {
                others.push(u);
            }
        } else if !ours.iter().any(|m| m == msg) {
            ours.push(msg.to_vec());
        }
    }
    if !ours.is_empty() {
        return Ok(ours);
    }
    let detail = match others.as_slice() {
        [] => format!("no pending attestation for this calendar ({uri}); none at all"),
        _ => format!(
            "no pending attestation for this calendar ({uri}); pending on: {}",
            others.join(", ")
        ),
    };
    Err((Rejection::NoPendingAttestation, detail))
}

/// The human report: one line per entry, then the totals and what to do next.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for e in &report.entries {
        out.push_str(&render_entry(e));
        out.push('\n');
    }
    let verb = if report.dry_run {
        "would readmit"
    } else {
        "readmitted"
    };
    out.push_str(&format!(
        "{verb} {} commitments, {} already known, {} rejected (calendar {})\n",
        report.accepted, report.already_known, report.rejected, report.calendar_uri
    ));
    if let Some(seq) = report.first_seq {
        out.push_str(&format!(
            "written to the log from seq {seq}; start otsd: the stamper commits them in its next \
             transaction\n"
        ));
    } else if report.dry_run && report.accepted > 0 {
        out.push_str("dry run: nothing written\n");
    }
    out
}

fn render_entry(e: &Entry) -> String {
    let file = &e.file;
    let commitment = e.commitment.as_deref().unwrap_or("-");
    match &e.outcome {
        Outcome::Accepted { round } => {
            format!("accepted       {file}: {commitment} as round {round}")
        }
        Outcome::AlreadyKnown { round, status } => {
            format!("already known  {file}: {commitment} is round {round} ({status})")
        }
        Outcome::Rejected { reason, detail } => {
            let on = e
                .commitment
                .as_deref()
                .map_or(String::new(), |c| format!(" (commitment {c})"));
            format!("rejected       {file}: {}: {detail}{on}", reason.name())
        }
    }
}
