//! `otsctl import-otsd`: a new otsd calendar from a Python otsd calendar directory.
use super::{CtlError, Report, While};
use crate::cli::ImportOtsdArgs;
use crate::pycal::importer::{self, ImportProgress};

pub fn run(a: ImportOtsdArgs) -> Result<Report, CtlError> {
    let mut progress = |p: ImportProgress| match p.total {
        0 => eprintln!("... {}", p.phase),
        total => eprintln!(
            "... {}: {} of {} {} ({:.0}%)",
            p.phase,
            p.done,
            total,
            p.unit,
            100.0 * p.done as f64 / total as f64
        ),
    };
    let report = importer::import_otsd(&a.python_calendar_dir, &a.dir, &mut progress)
        .doing("import-otsd")?;
    Report::new(a.json, &report, importer::render)
}
