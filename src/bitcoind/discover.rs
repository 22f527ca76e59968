//! Finding the local Bitcoin Core node without `--btc-rpc`, as the Python otsd does (through
//! python-bitcoinlib's `bitcoin.rpc.Proxy()`), so that a command line written for it stamps:
//!
//! - the configuration file is `$HOME/.bitcoin/bitcoin.conf`; a missing file counts as empty;
//! - it is read as `key=value` lines, `#` starts a comment, lines without `=` are skipped, sections
//!   (`[regtest]`) are not understood and the last value of a key wins (python-bitcoinlib's
//!   reader, so both calendars read the same file the same way);
//! - the node is `http://RPCCONNECT:RPCPORT/` (`rpcconnect` default `localhost`, `rpcport` default
//!   the network's: 8332, 18332, 18443);
//! - the credentials are the cookie file `DATADIR[/testnet3|/regtest]/.cookie` (`datadir` default
//!   the configuration file's directory) if it can be read, else `rpcuser:rpcpassword`.
//!
//! Unlike python-bitcoinlib, a cookie that cannot be read yet and no `rpcpassword` is not an error
//! here: the node may still be starting (it writes the cookie when it is ready), so the cookie file
//! is kept and the stamper keeps trying it, while the info page says the node is unreachable.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::Network;

/// Where the node is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `http://[USER:PASS@]HOST:PORT/`: credentials from `rpcpassword` only when no cookie is
    /// readable now.
    pub url: String,
    /// The cookie file, when the URL has no credentials.
    pub cookie: Option<PathBuf>,
    /// Where the settings came from, for the start-up log line.
    pub source: String,
}

/// Why the node could not be found from bitcoin.conf.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: rpcport={value} is not a port number", path.display())]
    BadPort { path: PathBuf, value: String },
}

/// python-bitcoinlib's default configuration file: `$HOME/.bitcoin/bitcoin.conf`.
pub fn default_conf_file() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".bitcoin").join("bitcoin.conf")
}

/// The RPC port Bitcoin Core listens on by default for `network`.
pub fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Mainnet => 8332,
        Network::Testnet => 18332,
        Network::Regtest => 18443,
    }
}

/// The settings in `text`, read as python-bitcoinlib reads bitcoin.conf.
pub fn parse_conf(text: &str) -> HashMap<String, String> {
    let mut conf = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        if let Some((k, v)) = line.split_once('=') {
            conf.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    conf
}

/// The node `conf_file` points at for `network` (reads the file and checks the cookie).
pub fn discover(conf_file: &Path, network: Network) -> Result<Discovered, DiscoverError> {
    let text = match std::fs::read_to_string(conf_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(DiscoverError::Unreadable {
                path: conf_file.to_owned(),
                source,
            })
        }
    };
    let conf = parse_conf(&text);
    let cookie = cookie_file(&conf, conf_file, network);
    let readable = std::fs::read_to_string(&cookie).is_ok();
    let mut found =
        resolve(&conf, network, cookie, readable).map_err(|value| DiscoverError::BadPort {
            path: conf_file.to_owned(),
            value,
        })?;
    found.source = format!("{} ({})", conf_file.display(), found.source);
    Ok(found)
}

/// `DATADIR[/testnet3|/regtest]/.cookie`.
fn cookie_file(conf: &HashMap<String, String>, conf_file: &Path, network: Network) -> PathBuf {
    let mut dir = match conf.get("datadir") {
        Some(d) => PathBuf::from(d),
        None => conf_file.parent().map(Path::to_owned).unwrap_or_default(),
    };
    match network {
        Network::Mainnet => {}
        Network::Testnet => dir.push("testnet3"),
        Network::Regtest => dir.push("regtest"),
    }
    dir.join(".cookie")
}

/// The decision, given what was read: the cookie if readable, else the password, else the cookie
/// file again (to be retried). The error is an `rpcport` value that is no port.
fn resolve(
    conf: &HashMap<String, String>,
    network: Network,
    cookie: PathBuf,
    cookie_readable: bool,
) -> Result<Discovered, String> {
    let host = conf.get("rpcconnect").map_or("localhost", String::as_str);
    let port = match conf.get("rpcport") {
        Some(p) => p.parse::<u16>().map_err(|_| p.clone())?,
        None => default_rpc_port(network),
    };
    let password = conf.get("rpcpassword").filter(|_| !cookie_readable);
    Ok(match password {
        Some(pass) => {
            let user = conf.get("rpcuser").map_or("", String::as_str);
            Discovered {
                url: format!("http://{user}:{pass}@{host}:{port}/"),
                cookie: None,
                source: "rpcuser/rpcpassword".into(),
            }
        }
        None => Discovered {
            url: format!("http://{host}:{port}/"),
            source: format!("cookie {}", cookie.display()),
            cookie: Some(cookie),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# a node\nrpcuser=alice # inline comment\nrpcpassword = s3cret\n\
                        [regtest]\nrpcport=19000\nserver\nrpcconnect=10.0.0.2\n";

    #[test]
    fn conf_is_read_as_python_bitcoinlib_reads_it() {
        let c = parse_conf(CONF);
        assert_eq!(c["rpcuser"], "alice");
        assert_eq!(c["rpcpassword"], "s3cret");
        assert_eq!(c["rpcport"], "19000", "sections are not understood");
        assert!(!c.contains_key("server"), "a line without = is skipped");
        assert_eq!(parse_conf("a=1\na=2\n")["a"], "2", "the last value wins");
    }

    #[test]
    fn a_readable_cookie_wins_over_the_password() {
        let c = parse_conf(CONF);
        let d = resolve(&c, Network::Regtest, "/d/regtest/.cookie".into(), true).unwrap();
        assert_eq!(d.url, "http://10.0.0.2:19000/");
        assert_eq!(d.cookie, Some(PathBuf::from("/d/regtest/.cookie")));
        let d = resolve(&c, Network::Regtest, "/d/regtest/.cookie".into(), false).unwrap();
        assert_eq!(d.url, "http://alice:s3cret@10.0.0.2:19000/");
        assert_eq!(d.cookie, None);
    }

    #[test]
    fn defaults_are_the_network_s_port_on_localhost_and_the_cookie_is_kept_for_later() {
        let c = parse_conf("");
        for (net, port) in [
            (Network::Mainnet, 8332),
            (Network::Testnet, 18332),
            (Network::Regtest, 18443),
        ] {
            let d = resolve(&c, net, "/x/.cookie".into(), false).unwrap();
            assert_eq!(d.url, format!("http://localhost:{port}/"));
            assert_eq!(d.cookie, Some(PathBuf::from("/x/.cookie")));
        }
        assert!(resolve(
            &parse_conf("rpcport=x"),
            Network::Mainnet,
            "/c".into(),
            false
        )
        .is_err());
    }

    #[test]
    fn the_cookie_lives_in_the_datadir_under_the_network_s_directory() {
        let conf_file = Path::new("/home/ots/.bitcoin/bitcoin.conf");
        let none = parse_conf("");
        assert_eq!(
            cookie_file(&none, conf_file, Network::Mainnet),
            PathBuf::from("/home/ots/.bitcoin/.cookie")
        );
        assert_eq!(
            cookie_file(&none, conf_file, Network::Testnet),
            PathBuf::from("/home/ots/.bitcoin/testnet3/.cookie")
        );
        let datadir = parse_conf("datadir=/srv/btc\n");
        assert_eq!(
            cookie_file(&datadir, conf_file, Network::Regtest),
            PathBuf::from("/srv/btc/regtest/.cookie")
        );
    }
}
