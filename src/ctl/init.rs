//! `otsctl init`: create a calendar directory.
use super::{CtlError, Report};
use crate::calendar::dir::CalendarDir;
use crate::cli::InitArgs;

pub fn run(a: InitArgs) -> Result<Report, CtlError> {
    let dir = CalendarDir::init(&a.dir, &a.uri, &a.donation_addr)?;
    Ok(Report::text(format!(
        "created calendar {} (uri {}); start it with: otsd -c {}\n",
        dir.path.display(),
        dir.uri,
        dir.path.display()
    )))
}
