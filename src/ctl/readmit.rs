//! `otsctl readmit`: put back commitments clients hold after a loss; exit status 1 if a file was
//! refused.
use super::{print_progress, CtlError, Report, While};
use crate::cli::ReadmitArgs;
use crate::replica::readmit;

pub fn run(a: ReadmitArgs) -> Result<Report, CtlError> {
    let report =
        readmit::readmit(&a.dir, &a.files, a.dry_run, &mut print_progress).doing("readmit")?;
    Ok(Report::new(a.json, &report, readmit::render)?.failing_unless(report.is_clean(), 1))
}
