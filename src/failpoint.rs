//! Failpoints: places where a running `otsd` fails on purpose, so that the fault matrix
//! (`tools/fault-matrix/main.rs`) and the tests can see what the whole daemon does then (what the
//! client is answered, what a restart finds), not only what one module does.
//!
//! **Inert unless [`ENV`] is set** in the environment of the process: the variable is read once,
//! and with it unset every check is one load of a `OnceLock` and one branch. Nothing else turns a
//! failpoint on (no flag, no file, no request). The variable holds comma-separated `name=N`:
//!
//! - `log-fdatasync-eio=N`: the N-th `fdatasync` of a log segment in this process (the first is
//!   number 1) fails with EIO, once, before syncing anything (what a dying disk does). The writer
//!   must poison itself; a later sync would succeed, so a writer that retried would be caught.
//! - `log-fdatasync-stall-ms=N`: every `fdatasync` of a log segment waits N milliseconds before
//!   syncing, so the bytes of a batch sit written but not durable for that long. The tests use it
//!   to check that nothing (`GET /log/`, the shipper, an answer to `POST /digest`) runs ahead of
//!   the durable end.
//! - `fold-panic-seq=S`: folding the event with sequence number `S` into the projection panics
//!   (a bug in the fold); `otsd` must abort, and a restart without the variable must replay the
//!   log cleanly.
//!
//! A malformed or unknown entry is reported by [`check`], which `otsd` calls at start-up, so a
//! typo cannot leave a fault run silently fault-free. Imports nothing else of ours.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that turns failpoints on.
pub const ENV: &str = "OTSD_FAILPOINTS";

/// The failpoints asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Failpoints {
    /// `log-fdatasync-eio`: which `fdatasync` fails (1-based).
    pub fdatasync_eio: Option<u64>,
    /// `log-fdatasync-stall-ms`: how long each `fdatasync` waits first.
    pub fdatasync_stall_ms: Option<u64>,
    /// `fold-panic-seq`: the sequence number whose fold panics.
    pub fold_panic_seq: Option<u64>,
}

/// Parses the value of [`ENV`].
pub fn parse(spec: &str) -> Result<Failpoints, String> {
    let mut fp = Failpoints::default();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: `{entry}` is not name=N"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{ENV}: `{entry}`: {value} is not a number"))?;
        match name {
            "log-fdatasync-eio" => fp.fdatasync_eio = Some(n),
            "log-fdatasync-stall-ms" => fp.fdatasync_stall_ms = Some(n),
            "fold-panic-seq" => fp.fold_panic_seq = Some(n),
            _ => {
                return Err(format!(
                    "{ENV}: unknown failpoint `{name}` (known: log-fdatasync-eio, log-fdatasync-stall-ms, fold-panic-seq)"
                ))
            }
        }
    }
    Ok(fp)
}

fn config() -> &'static Result<Option<Failpoints>, String> {
    static CONFIG: OnceLock<Result<Option<Failpoints>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| match std::env::var(ENV) {
        Ok(spec) => parse(&spec).map(Some),
        Err(_) => Ok(None),
    })
}

fn active() -> Option<&'static Failpoints> {
    config().as_ref().ok().and_then(Option::as_ref)
}

/// The failpoints in force (`None`: inert), or why [`ENV`] is malformed; logs the ones in force
/// so a fault run is visible in the daemon's log.
pub fn check() -> Result<Option<Failpoints>, String> {
    let fp = config().clone()?;
    if let Some(fp) = &fp {
        tracing::warn!("failpoints in force ({ENV}): {fp:?}");
    }
    Ok(fp)
}

/// Called before each `fdatasync` of a log segment: the stall of `log-fdatasync-stall-ms`, and
/// the EIO of `log-fdatasync-eio` if this is the one.
pub fn before_fdatasync() -> std::io::Result<()> {
    static SYNCS: AtomicU64 = AtomicU64::new(0);
    if let Some(ms) = active().and_then(|fp| fp.fdatasync_stall_ms) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let Some(n) = active().and_then(|fp| fp.fdatasync_eio) else {
        return Ok(());
    };
    if SYNCS.fetch_add(1, Ordering::Relaxed) + 1 == n {
        tracing::warn!("failpoint log-fdatasync-eio={n}: this fdatasync fails with EIO");
        return Err(std::io::Error::from_raw_os_error(5));
    }
    Ok(())
}

/// Called before folding the event `seq`: the panic of `fold-panic-seq`, if this is the one.
pub fn before_fold(seq: u64) {
    if active().and_then(|fp| fp.fold_panic_seq) == Some(seq) {
        panic!("failpoint fold-panic-seq={seq}: a bug in the fold");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_failpoints_and_refuses_others() {
        assert_eq!(parse(""), Ok(Failpoints::default()));
        assert_eq!(
            parse("log-fdatasync-eio=3, fold-panic-seq=10, log-fdatasync-stall-ms=500"),
            Ok(Failpoints {
                fdatasync_eio: Some(3),
                fdatasync_stall_ms: Some(500),
                fold_panic_seq: Some(10)
            })
        );
        assert!(parse("fold-panic-seq").is_err());
        assert!(parse("fold-panic-seq=x").is_err());
        assert!(parse("fsync-eio=1")
            .unwrap_err()
            .contains("unknown failpoint"));
    }
}
