//! `otsctl recover`: rebuild the log from an untrusted replica; exit status 2 if anything was
//! rejected.
use super::{print_progress, CtlError, Report, While};
use crate::cli::RecoverArgs;
use crate::replica::mirror::Replica;
use crate::replica::recover::{self, Options};

pub fn run(a: RecoverArgs) -> Result<Report, CtlError> {
    let from = Replica::parse(&a.from);
    let opts = Options { dry_run: a.dry_run };
    let report =
        recover::recover(&a.dir, &from, opts, &mut print_progress).doing("recover the log")?;
    Ok(Report::new(a.json, &report, recover::render)?.failing_unless(report.is_clean(), 2))
}
