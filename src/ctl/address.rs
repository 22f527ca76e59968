//! `otsctl address`: the address that funds the calendar's stamper key.
use super::{CtlError, Report};
use crate::calendar::dir::CalendarDir;
use crate::cli::AddressArgs;
use crate::stamper::key::funding_address;

pub fn run(a: AddressArgs) -> Result<Report, CtlError> {
    let dir = CalendarDir::load(&a.dir)?;
    let address = funding_address(&dir, a.network())?;
    Ok(Report::text(format!("{address}\n")))
}
