//! `otsctl verify`: every problem in the log and its events; exit status 1 if any.
use super::{print_progress, CtlError, Report, While};
use crate::audit::{node::Node, verify, LogSource, SeqFilter};
use crate::cli::VerifyArgs;

pub fn run(a: VerifyArgs) -> Result<Report, CtlError> {
    let source = LogSource::open(&a.dir, !a.no_key).doing("open the calendar")?;
    let node = match &a.node.btc_rpc {
        Some(url) => Some(Node::connect(url, a.node.btc_rpc_cookie.as_deref())?),
        None => None,
    };
    let range = SeqFilter::new(a.range.from, a.range.to);
    let report = verify::verify_with_node(&source, range, node.as_ref(), &mut print_progress)?;
    Ok(Report::new(a.json, &report, verify::render)?.failing_unless(report.is_clean(), 1))
}
