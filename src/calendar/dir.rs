//! The calendar directory, laid out as the Python otsd lays it out: `uri`, `donation_addr` and
//! `hmac-key` files, plus our own `log/` directory of event-log segments.
//!
//! Every problem names the file and says how to fix it, because this is the first thing an operator
//! meets.
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Length of a new `hmac-key` (the Python `otsd` README creates 32 random bytes).
pub const HMAC_KEY_LEN: usize = 32;
/// Longest `hmac-key` accepted. The Python otsd uses the file's bytes unstripped, whatever their
/// number (a key written with a trailing newline keeps it), and so does otsd, so that a calendar
/// taken over from it (`otsctl import-otsd`) derives the same MACs.
pub const MAX_HMAC_KEY_LEN: usize = 4096;
/// Longest `uri` accepted; python-opentimestamps refuses pending attestations with longer URIs.
pub const MAX_URI_LEN: usize = 1000;
/// Name of the sub-directory that holds the event log.
pub const LOG_DIR: &str = "log";
/// Marker file written once the calendar's log exists: from then on a missing log is a loss to
/// recover from, never a reason to start a new history (see [`CalendarDir::has_had_history`]).
pub const HISTORY_MARKER: &str = "log-created";
/// File holding the stamper's secp256k1 secret key (32 raw bytes, mode 0600). It signs the stamping
/// transactions; its coins are found on chain, so the node needs no wallet.
pub const STAMPER_KEY_FILE: &str = "stamper-key";
/// Exact length of the `stamper-key` file.
pub const STAMPER_KEY_LEN: usize = 32;

/// What is wrong with a calendar directory.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{path}: missing; {hint}")]
    Missing { path: PathBuf, hint: &'static str },
    #[error("{path}: {problem}; {hint}")]
    Malformed {
        path: PathBuf,
        problem: String,
        hint: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: already exists; refusing to overwrite a calendar")]
    Exists { path: PathBuf },
}

const INIT_HINT: &str = "create the calendar with `otsctl init DIR --uri URL --donation-addr ADDR`";

/// A loaded calendar directory.
#[derive(Clone)]
pub struct CalendarDir {
    pub path: PathBuf,
    /// The calendar's public URI, written into every pending attestation.
    pub uri: String,
    /// Where donations go; shown on the info page.
    pub donation_addr: String,
    /// The secret from which commitment MACs and the log's HMAC chain key are derived.
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for CalendarDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarDir")
            .field("path", &self.path)
            .field("uri", &self.uri)
            .field("donation_addr", &self.donation_addr)
            .finish_non_exhaustive()
    }
}

impl CalendarDir {
    /// Reads and checks `uri`, `donation_addr` and `hmac-key` under `path`.
    pub fn load(path: &Path) -> Result<CalendarDir, DirError> {
        let uri = read_text(&path.join("uri"))?;
        check_uri(&path.join("uri"), &uri)?;
        let donation_addr = read_text(&path.join("donation_addr"))?;
        check_addr(&path.join("donation_addr"), &donation_addr)?;
        let hmac_key = read_key(&path.join("hmac-key"))?;
        Ok(CalendarDir {
            path: path.to_owned(),
            uri,
            donation_addr,
            hmac_key,
        })
    }

    /// Creates a new calendar directory with a fresh random key (mode 0600).
    pub fn init(path: &Path, uri: &str, donation_addr: &str) -> Result<CalendarDir, DirError> {
        check_uri(&path.join("uri"), uri)?;
        check_addr(&path.join("donation_addr"), donation_addr)?;
        fs::create_dir_all(path).map_err(|source| io(path, source))?;
        let mut key = vec![0u8; HMAC_KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        write_new(&path.join("hmac-key"), &key, 0o600)?;
        write_new(&path.join(STAMPER_KEY_FILE), &random_stamper_key(), 0o600)?;
        write_new(&path.join("uri"), format!("{uri}\n").as_bytes(), 0o644)?;
        write_new(
            &path.join("donation_addr"),
            format!("{donation_addr}\n").as_bytes(),
            0o644,
        )?;
        CalendarDir::load(path)
    }

    /// The stamper's secret key, created (mode 0600) if this directory predates it. Whether the bytes
    /// are a valid secp256k1 key is checked by the stamper.
    pub fn stamper_key(&self) -> Result<[u8; STAMPER_KEY_LEN], DirError> {
        let path = self.path.join(STAMPER_KEY_FILE);
        let key = match fs::read(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_stamper_key();
                write_new(&path, &key, 0o600)?;
                tracing::info!(path = %path.display(), "created the stamper key");
                return Ok(key);
            }
            Err(e) => return Err(io(&path, e)),
        };
        key.as_slice().try_into().map_err(|_| DirError::Malformed {
            path,
            problem: format!("{} bytes, expected {STAMPER_KEY_LEN} raw bytes", key.len()),
            hint: "restore the file from a backup; a new key would not own the calendar's coins",
        })
    }

    /// Whether this calendar has had a log: the [`HISTORY_MARKER`] exists. A calendar made by
    /// hand (`uri`, `donation_addr`, `hmac-key` only) or by `otsctl init` has none yet.
    pub fn has_had_history(&self) -> bool {
        self.path.join(HISTORY_MARKER).exists()
    }

    /// Writes the [`HISTORY_MARKER`] (durably) if it is not there yet.
    pub fn mark_history(&self) -> Result<(), DirError> {
        let path = self.path.join(HISTORY_MARKER);
        if path.exists() {
            return Ok(());
        }
        let note = format!(
            "This calendar has an event log in {}/.\n\
             If that log is ever missing, otsd refuses to start: restore it, or rebuild it with\n\
             `otsctl recover {} --from MIRROR`. Delete this file only to start a new history.\n",
            LOG_DIR,
            self.path.display()
        );
        write_new(&path, note.as_bytes(), 0o644)?;
        fs::File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.path, e))
    }

    /// The directory holding the event log.
    pub fn log_dir(&self) -> PathBuf {
        self.path.join(LOG_DIR)
    }
}

/// A fresh secret key: 32 random bytes, drawn until they are a valid secp256k1 scalar.
fn random_stamper_key() -> [u8; STAMPER_KEY_LEN] {
    loop {
        let mut key = [0u8; STAMPER_KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        if bitcoin::secp256k1::SecretKey::from_slice(&key).is_ok() {
            return key;
        }
    }
}

fn io(path: &Path, source: std::io::Error) -> DirError {
    DirError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, DirError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DirError::Missing {
            path: path.to_owned(),
            hint: INIT_HINT,
        }),
        Err(e) => Err(io(path, e)),
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, DirError> {
    let key = match fs::read(path) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DirError::Missing {
                path: path.to_owned(),
                hint: INIT_HINT,
            })
        }
        Err(e) => return Err(io(path, e)),
    };
    if key.is_empty() || key.len() > MAX_HMAC_KEY_LEN {
        return Err(DirError::Malformed {
            path: path.to_owned(),
            problem: format!(
                "{} bytes, expected 1 to {MAX_HMAC_KEY_LEN} raw bytes",
                key.len()
            ),
            hint: "write 32 random bytes, e.g. `head -c 32 /dev/urandom > hmac-key`",
        });
    }
    Ok(key)
}

fn check_uri(path: &Path, uri: &str) -> Result<(), DirError> {
    let ok = !uri.is_empty()
        && uri.len() <= MAX_URI_LEN
        && (uri.starts_with("http://") || uri.starts_with("https://"))
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/:".contains(&b));
    if ok {
        return Ok(());
    }
    Err(DirError::Malformed {
        path: path.to_owned(),
        problem: format!("{uri:?} is not an http(s) URL of letters, digits and -._/:"),
        hint: "write the calendar's public URL, e.g. `echo https://calendar.example.org > uri`",
    })
}

fn check_addr(path: &Path, addr: &str) -> Result<(), DirError> {
    if !addr.is_empty() && addr.len() <= 100 && addr.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(DirError::Malformed {
        path: path.to_owned(),
        problem: format!("{addr:?} is not a Bitcoin address"),
        hint: "write the Bitcoin address that receives donations",
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DirError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => DirError::Exists {
                path: path.to_owned(),
            },
            _ => io(path, e),
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(path, e))
}
