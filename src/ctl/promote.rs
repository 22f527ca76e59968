//! `otsctl promote DIR`: a mirror becomes the primary (see [`crate::replica::role`]).
use super::{CtlError, Report, While};
use crate::cli::otsctl::PromoteArgs;
use crate::replica::role;

pub fn run(a: PromoteArgs) -> Result<Report, CtlError> {
    let done = role::promote(&a.dir, a.force).doing(format!("promoting {}", a.dir.display()))?;
    let checked = if done.primary_checked {
        "the old primary does not answer"
    } else {
        "the old primary was NOT checked (--force)"
    };
    Ok(Report::text(format!(
        "promoted {} to primary: it was a mirror of {}; its log verifies with the calendar's key \
         up to seq {}; {checked}.\nStart it with `otsd -c {}` (and point the calendar's URL at it).\n",
        a.dir.display(),
        done.primary,
        done.head.next_seq,
        a.dir.display()
    )))
}
