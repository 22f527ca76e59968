//! `otsctl address`: the address that funds the calendar's stamper key.
use super::{CtlError, Report};
use crate::calendar::dir::CalendarDir;
use crate::cli::AddressArgs;
use crate::config::Network;
use crate::stamper::key::funding_address;

pub fn run(a: AddressArgs) -> Result<Report, CtlError> {
    let dir = CalendarDir::load(&a.dir)?;
    let address = funding_address(&dir, Network::from(&a.network).bitcoin())?;
    Ok(Report::text(format!("{address}\n")))
}
