//! `otsctl inspect`: dump events, or find where a digest or commitment is (exit status 1 if
//! nowhere).
use std::io::Write;

use super::{CtlError, Report, While};
use crate::audit::inspect::{self, Filter, Target};
use crate::audit::{parse_hex, LogSource, SeqFilter};
use crate::cli::InspectArgs;

/// Events are written to stdout as they are read (a whole log does not fit in a report).
pub fn run(a: InspectArgs) -> Result<Report, CtlError> {
    let source = LogSource::open(&a.dir, true).doing("open the calendar")?;
    let target = match (&a.commitment, &a.digest) {
        (Some(c), _) => Some(Target::Commitment(parse_hex(c)?)),
        (_, Some(d)) => Some(Target::Digest(parse_hex(d)?)),
        _ => None,
    };
    if let Some(target) = target {
        let loc = inspect::locate(&source, &target)?;
        return Ok(
            Report::new(a.json, &loc, inspect::render_location)?.failing_unless(loc.found, 1)
        );
    }
    let filter = Filter {
        range: SeqFilter::new(a.range.from, a.range.to),
        event_type: a.event_type,
    };
    let mut out = std::io::stdout().lock();
    let mut written = Ok(());
    inspect::dump(&source, &filter, |seq, event| {
        if written.is_ok() {
            written = if a.json {
                writeln!(out, "{}", inspect::event_json(seq, event))
            } else {
                writeln!(out, "{}", inspect::event_line(seq, event))
            };
        }
    })?;
    written?;
    Ok(Report::text(String::new()))
}
