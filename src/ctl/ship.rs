//! `otsctl ship`: copy the log's new bytes into a mirror directory.
use super::{CtlError, Report, While};
use crate::cli::ShipArgs;
use crate::replica::ship;

pub fn run(a: ShipArgs) -> Result<Report, CtlError> {
    let report = ship::ship(&a.dir, &a.to).doing("ship the log")?;
    Report::new(a.json, &report, ship::render)
}
