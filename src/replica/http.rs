//! A minimal plain-HTTP/1.1 `GET` for fetching a log mirror from a static file server.
//!
//! Deliberately small: no TLS, no redirects, no chunked transfer encoding (static servers send a
//! `Content-Length` for files). Every download has a size limit and every socket operation a
//! timeout, because the server is not trusted. What is downloaded is verified by the caller.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Time to establish a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any single read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head accepted.
pub const MAX_HEAD_LEN: usize = 64 << 10;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}: only plain http://HOST[:PORT]/PATH URLs are supported")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {problem}")]
    Protocol { url: String, problem: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl HttpError {
    /// True for a 404: the file is not on the server.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::Status { status: 404, .. })
    }
}

/// `http://host[:port]/path` split into the address to connect to, the Host header and the path.
fn split_url(url: &str) -> Result<(String, String, String), HttpError> {
    let bad = || HttpError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let addr = if authority.rsplit(':').next().is_some_and(|p| {
        authority.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    }) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, authority.to_owned(), path.to_owned()))
}

fn connect(url: &str, addr: &str) -> Result<TcpStream, HttpError> {
    let io = |source| HttpError::Io {
        url: url.to_owned(),
        source,
    };
    let mut last = None;
    for sa in addr.to_socket_addrs().map_err(io)? {
        match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                s.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(io(
        last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into())
    ))
}

/// Downloads `url`, refusing bodies larger than `limit` bytes.
pub fn get(url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
    let (mut stream, _, body, status, length) = send_get(url, "otsctl", "")?;
    if status != 200 {
        return Err(HttpError::Status {
            url: url.to_owned(),
            status,
        });
    }
    read_body(&mut stream, url, body, length, limit)
}

/// A request sent and its response head read: the stream, the head, the body bytes read with
/// it, the status and the announced length.
type Sent = (TcpStream, String, Vec<u8>, u16, Option<u64>);

/// Sends `GET url` with `extra` header lines and reads the response head: the stream, the head,
/// the body bytes read with it, the status and the announced length.
fn send_get(url: &str, agent: &str, extra: &str) -> Result<Sent, HttpError> {
    let (addr, host, path) = split_url(url)?;
    let mut stream = connect(url, &addr)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n{extra}Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|source| HttpError::Io {
            url: url.to_owned(),
            source,
        })?;
    let (head, body) = read_head(&mut stream, url)?;
    let (status, length) = parse_head(&head, url)?;
    Ok((stream, head, body, status, length))
}

/// Reads the rest of a body whose first bytes are `body`, refusing more than `limit` bytes and
/// a body that ends before its announced `length`.
fn read_body(
    stream: &mut TcpStream,
    url: &str,
    mut body: Vec<u8>,
    length: Option<u64>,
    limit: u64,
) -> Result<Vec<u8>, HttpError> {
    let too_large = || HttpError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    if length.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let want = length.unwrap_or(limit + 1);
    let mut rest = stream.take(want.saturating_sub(body.len() as u64));
    rest.read_to_end(&mut body)
        .map_err(|source| HttpError::Io {
            url: url.to_owned(),
            source,
        })?;
    if body.len() as u64 > limit {
        return Err(too_large());
    }
    if length.is_some_and(|n| n != body.len() as u64) {
        return Err(HttpError::Protocol {
            url: url.to_owned(),
            problem: format!("connection closed after {} bytes of the body", body.len()),
        });
    }
    Ok(body)
}

/// An answer of any status, as [`request`] returns it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The raw response head (status line and headers).
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET url` with `extra` header lines (each ending in `\r\n`); any status is returned, bodies
/// larger than `limit` are refused. For the live follower (`Range` requests) and `/` as JSON.
pub fn request(url: &str, extra: &str, limit: u64) -> Result<Answer, HttpError> {
    let (mut stream, head, body, status, length) = send_get(url, "otsd-mirror", extra)?;
    let body = read_body(&mut stream, url, body, length, limit)?;
    Ok(Answer { status, head, body })
}

/// Reads up to the end of the response head; returns the head and the body bytes read with it.
fn read_head(stream: &mut TcpStream, url: &str) -> Result<(String, Vec<u8>), HttpError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), body));
        }
        if buf.len() > MAX_HEAD_LEN {
            return Err(protocol(url, "response head too large"));
        }
        let n = stream.read(&mut chunk).map_err(|source| HttpError::Io {
            url: url.to_owned(),
            source,
        })?;
        if n == 0 {
            return Err(protocol(
                url,
                "connection closed before the response head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn protocol(url: &str, problem: &str) -> HttpError {
    HttpError::Protocol {
        url: url.to_owned(),
        problem: problem.to_owned(),
    }
}

/// The status code and the `Content-Length`, if any. Refuses chunked bodies.
fn parse_head(head: &str, url: &str) -> Result<(u16, Option<u64>), HttpError> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(url, "malformed status line"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| protocol(url, "malformed Content-Length"))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(protocol(
                url,
                "chunked transfer encoding is not supported; serve the mirror with a static file server",
            ));
        }
    }
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        let split = |u: &str| split_url(u).ok();
        assert_eq!(
            split("http://127.0.0.1:8000/m/segments.txt"),
            Some((
                "127.0.0.1:8000".into(),
                "127.0.0.1:8000".into(),
                "/m/segments.txt".into()
            ))
        );
        assert_eq!(
            split("http://example.org"),
            Some(("example.org:80".into(), "example.org".into(), "/".into()))
        );
        assert_eq!(split("https://example.org/"), None);
        assert_eq!(split("http://user@example.org/"), None);
    }

    #[test]
    fn heads_give_status_and_length_and_refuse_chunked() {
        let h = "HTTP/1.0 200 OK\r\nContent-Length: 12\r\nServer: x";
        assert_eq!(parse_head(h, "u").ok(), Some((200, Some(12))));
        let h = "HTTP/1.1 404 Not Found\r\n";
        assert_eq!(parse_head(h, "u").ok(), Some((404, None)));
        let h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked";
        assert!(parse_head(h, "u").is_err());
    }
}
