//! `otsd --mirror-of URL -c DIR`: a read-only mirror. No writer, aggregator or stamper: the
//! follower ([`crate::replica::follow`]) extends the verified copy in `DIR/log` and folds it into
//! the projection; the HTTP API serves it like the primary's (`POST /digest` answers 503 naming the
//! primary), and the copy is published again under `/log/`.
//!
//! `DIR` needs no files to begin with: the calendar's `uri` and `donation_addr` are taken from the
//! primary's info page on the first start (pending proofs name the primary's URI, byte for byte as
//! the primary serves them). With the calendar's `hmac-key` in `DIR` the mirror verifies the HMAC
//! chain too, and can later be promoted (`otsctl promote DIR`); without it, it verifies CRCs and
//! the public hash chain, and authenticates its projection checkpoints with a key of its own
//! ([`MIRROR_KEY_FILE`]).
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::{bind_to, ServeConfig, ServeError};
use crate::aggregator::Intake;
use crate::calendar::dir::LOG_DIR;
use crate::http::{self, AppState, MirrorInfo, OpsConfig};
use crate::log::{FsStorage, LogKey};
use crate::projection::checkpoint::PROJECTION_DIR;
use crate::projection::rebuild::{rebuild_with, Checkpointer, Keys, RebuildOptions};
use crate::replica::follow::local::LocalCopy;
use crate::replica::follow::source::HttpSource;
use crate::replica::follow::{Follow, Follower};
use crate::replica::publish::Publisher;
use crate::replica::role;

/// A mirror's own checkpoint key (32 random bytes, mode 0600), when it lacks the calendar's.
pub const MIRROR_KEY_FILE: &str = "mirror-checkpoint-key";
/// Largest info page read from the primary.
const MAX_INFO_LEN: u64 = 1 << 20;

/// Starts the mirror; it runs until `shutdown` resolves.
pub async fn start(
    cfg: ServeConfig,
    primary: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<super::Running, ServeError> {
    let dir = cfg.calendar_dir.clone();
    role::claim_mirror_dir(&dir, &primary).map_err(mirror_err)?;
    let (uri, donation) = calendar_identity(&dir, &primary).await?;
    let hmac = read_optional(&dir.join("hmac-key"))?;
    let chain_key = hmac.as_deref().map(LogKey::derive);
    let checkpoint_key = match &chain_key {
        Some(k) => k.clone(),
        None => LogKey::derive(&own_key(&dir)?),
    };
    let log_dir = dir.join(LOG_DIR);
    std::fs::create_dir_all(&log_dir).map_err(|e| io_err(&log_dir, e))?;
    let lock = FsStorage::new_locked(&log_dir)?;
    let copy = LocalCopy::open(&log_dir, chain_key.clone())?;
    let keys = Keys {
        chain: chain_key.as_ref(),
        checkpoint: &checkpoint_key,
    };
    let opts = RebuildOptions {
        use_checkpoint: true,
        write_checkpoint: true,
    };
    let mut rebuilt = rebuild_with(
        &log_dir,
        &dir.join(PROJECTION_DIR),
        keys,
        cfg.min_confirmations,
        opts,
        &mut |_| {},
    )
    .map_err(|e| ServeError::Replay {
        seq: 0,
        problem: e.to_string(),
    })?;
    tracing::info!(
        events = rebuilt.live.next_seq(),
        hmac_chain = chain_key.is_some(),
        "mirror: rebuilt the projection from the local copy"
    );
    let view = Arc::new(RwLock::new(std::mem::take(&mut rebuilt.live)));
    let checkpointer =
        Checkpointer::spawn_with(&log_dir, chain_key.as_ref(), rebuilt, view.clone());
    let (intake, _queue, _) = Intake::new(1);
    let ops = OpsConfig {
        log_dir: Some(log_dir.clone()),
        ..OpsConfig::default()
    };
    let network = cfg.network.name().to_owned();
    let state = AppState::new(intake, view.clone(), uri, donation, network, ops);
    let status = crate::telemetry::StatusBoard::default();
    let _ = state.mirror.set(MirrorInfo {
        primary: primary.clone(),
        status: status.clone(),
    });
    let _ = state.log.set(crate::log::Reader::open(&log_dir, None)?);
    if cfg.replica.publish_log {
        let feed: Arc<dyn http::log_feed::LogFeed> =
            Arc::new(Publisher::new(&log_dir, copy.durable_end()));
        let _ = state.log_feed.set(feed);
    }
    let follow = Follow {
        source: Box::new(HttpSource::new(&primary)),
        copy,
        view,
        status,
        poll: cfg.replica.mirror_poll,
    };
    let follower = Follower::spawn(follow).map_err(|e| io_err(&dir, e))?;
    let (listener, addr) = bind_to(format!("{}:{}", cfg.rpc_address, cfg.rpc_port)).await?;
    tracing::info!(%addr, %primary, "mirror listening");
    let done = tokio::spawn(async move {
        http::server::serve(listener, state, cfg.http.clone(), shutdown).await;
        follower.stop();
        checkpointer.stop();
        drop(lock);
        tracing::info!("mirror stopped; goodbye");
        Ok(())
    });
    Ok(super::Running {
        addr,
        metrics_addr: None,
        done,
    })
}

/// The calendar's `uri` and `donation_addr`: from `DIR`, or else from the primary's info page
/// (then written to `DIR`).
async fn calendar_identity(dir: &Path, primary: &str) -> Result<(String, String), ServeError> {
    let uri = read_optional(&dir.join("uri"))?;
    let donation = read_optional(&dir.join("donation_addr"))?;
    if let (Some(u), Some(d)) = (&uri, &donation) {
        return Ok((text(u), text(d)));
    }
    let root = primary
        .trim_end_matches('/')
        .trim_end_matches("segments.txt")
        .trim_end_matches('/')
        .trim_end_matches("/log")
        .to_owned();
    let url = format!("{root}/");
    let answer = tokio::task::spawn_blocking(move || {
        crate::replica::http::request(&url, "Accept: application/json\r\n", MAX_INFO_LEN)
    })
    .await
    .map_err(|e| io_err(dir, std::io::Error::other(e.to_string())))?;
    let info: serde_json::Value = answer
        .ok()
        .filter(|a| a.status == 200)
        .and_then(|a| serde_json::from_slice(&a.body).ok())
        .ok_or_else(|| {
            io_err(
                dir,
                std::io::Error::other(format!(
                    "cannot read the calendar's uri from {root}/ (Accept: application/json); \
                     write the files uri and donation_addr in the mirror directory by hand"
                )),
            )
        })?;
    let field = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
    let (uri, donation) = (field("uri"), field("donation_address"));
    for (name, value) in [("uri", &uri), ("donation_addr", &donation)] {
        crate::log::atomic::write_atomically(dir, name, format!("{value}\n").as_bytes())
            .map_err(|e| io_err(dir, std::io::Error::other(e.to_string())))?;
    }
    Ok((uri, donation))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ServeError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

/// The mirror's own checkpoint key, created on first use.
fn own_key(dir: &Path) -> Result<Vec<u8>, ServeError> {
    let path = dir.join(MIRROR_KEY_FILE);
    if let Some(key) = read_optional(&path)? {
        return Ok(key);
    }
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    crate::log::atomic::write_atomically(dir, MIRROR_KEY_FILE, &key)
        .map_err(|e| io_err(&path, std::io::Error::other(e.to_string())))?;
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    Ok(key)
}

fn io_err(path: &Path, e: std::io::Error) -> ServeError {
    ServeError::Log(crate::log::LogError::io("prepare the mirror", path, e))
}

fn mirror_err(e: role::RoleError) -> ServeError {
    ServeError::Role(e.to_string())
}
