//! `otsctl prove-head`: write a `.ots` proof that the log's history up to a point existed then.
use super::{print_progress, CtlError, Report, While};
use crate::audit::{prove_head, LogSource};
use crate::cli::ProveHeadArgs;

pub fn run(a: ProveHeadArgs) -> Result<Report, CtlError> {
    let source = LogSource::open(&a.dir, false).doing("open the calendar")?;
    let proof = prove_head::prove_head(&source, a.seq, &mut print_progress)?;
    let out = a
        .output
        .unwrap_or_else(|| format!("log-head-{}.ots", proof.next_seq).into());
    std::fs::write(&out, &proof.ots).doing(format!("write {}", out.display()))?;
    let shown = out.display().to_string();
    Report::new(a.json, &proof, |p| prove_head::render(p, &shown))
}
