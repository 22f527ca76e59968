//! `otsctl replay`: rebuild the projection checkpoint from the log alone, with a progress bar on a
//! terminal.
use std::io::IsTerminal;

use super::{print_progress, CtlError, Report};
use crate::audit::replay::{self, Output};
use crate::cli::ReplayArgs;
use crate::log::Progress;

pub fn run(a: ReplayArgs) -> Result<Report, CtlError> {
    let output = match (&a.out, a.dry_run) {
        (_, true) => Output::Nowhere,
        (Some(dir), false) => Output::Into(dir.clone()),
        (None, false) => Output::InPlace,
    };
    let bar = (!a.no_bar && std::io::stderr().is_terminal())
        .then(|| replay::log_events(&a.dir))
        .transpose()?
        .map(progress_bar);
    let mut sink = |p: &Progress| match &bar {
        Some(bar) => bar.set_position(p.seq + 1),
        None => print_progress(p),
    };
    let result = replay::replay(
        &a.dir,
        &output,
        a.confirmations.btc_min_confirmations,
        &mut sink,
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (_, summary) = result?;
    Report::new(a.json, &summary, replay::render)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
