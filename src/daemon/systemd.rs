//! The systemd service notification protocol (`sd_notify(3)`), written out: one datagram of
//! `KEY=VALUE` lines to the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`). Without `$NOTIFY_SOCKET` (not run by systemd, or not
//! `Type=notify`) every call does nothing.
//!
//! otsd sends `READY=1` once it listens, `STATUS=` lines with what it is doing, `STOPPING=1` when
//! a shutdown begins, and `WATCHDOG=1` every half `$WATCHDOG_USEC` while its runtime is alive
//! (`WatchdogSec=` in the unit).
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to the service manager, or nothing.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` if it is set; errors are logged and leave a no-op notifier.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Notifier::default();
        };
        match connect(&path) {
            Ok(socket) => Notifier {
                socket: Some(socket),
            },
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={path:?}: {e}; not notifying systemd");
                Notifier::default()
            }
        }
    }

    /// Whether messages go anywhere.
    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments) as one datagram.
    pub fn notify(&self, state: &str) {
        if let Some(s) = &self.socket {
            if let Err(e) = s.send(state.as_bytes()) {
                tracing::debug!("sd_notify {state:?}: {e}");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn connect(path: &std::ffi::OsStr) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.connect_addr(&addr)?;
    } else {
        socket.connect(path)?;
    }
    Ok(socket)
}

/// The watchdog interval systemd asks for (`$WATCHDOG_USEC`, for this process when
/// `$WATCHDOG_PID` names it), if any.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().filter(|p| !p.is_empty()) {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(connect(path.as_os_str()).unwrap()),
        };
        n.ready("listening on\n127.0.0.1:1");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "READY=1\nSTATUS=listening on 127.0.0.1:1"
        );
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("otsd-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            socket: Some(connect(std::ffi::OsStr::new(&format!("@{name}"))).unwrap()),
        };
        n.watchdog();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
