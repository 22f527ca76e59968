//! The Bitcoin Core JSON-RPC client: credentials, timeouts, and URLs safe to print.
use std::path::Path;
use std::time::Duration;

use bitcoincore_rpc::jsonrpc::{self, simple_http};
use bitcoincore_rpc::{Auth, Client};

/// An RPC client for `url` (`http://[USER:PASS@]HOST:PORT/[wallet/NAME]`) with credentials from
/// the URL or, when it has none, from the `cookie` file, and `timeout` on each call.
pub fn client(url: &str, cookie: Option<&Path>, timeout: Duration) -> Result<Client, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (auth, host) = match rest.split_once('@') {
        Some((cred, host)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (Auth::UserPass(u.to_owned(), p.to_owned()), host)
        }
        None => match cookie {
            Some(c) => (Auth::CookieFile(c.to_owned()), rest),
            None => (Auth::None, rest),
        },
    };
    let (user, pass) = auth.get_user_pass().map_err(|e| e.to_string())?;
    let mut builder = simple_http::Builder::new()
        .url(&format!("{scheme}://{host}"))
        .map_err(|e| e.to_string())?
        .timeout(timeout);
    if let Some(user) = user {
        builder = builder.auth(user, pass);
    }
    let transport = jsonrpc::Client::with_transport(builder.build());
    Ok(Client::from_jsonrpc(transport))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((cred, host)) => {
            let (scheme, user) = cred.split_once("://").unwrap_or(("http", cred));
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("http://u:secret@127.0.0.1:8332/"),
            "http://u:***@127.0.0.1:8332/"
        );
        assert_eq!(redact("http://127.0.0.1:8332/"), "http://127.0.0.1:8332/");
    }
}
