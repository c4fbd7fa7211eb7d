//! `caucus healthcheck`: asks a running server's `/healthz` (or `/readyz`) over plain
//! HTTP/1.1, for container `HEALTHCHECK`s, service managers and scripts that have no
//! `curl` (a distroless image has none).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an answer that is read: `/healthz` and `/readyz` answer a few bytes.
const MAX_ANSWER: u64 = 16 * 1024;

/// Where to ask: a host (name or address), a port and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address (IPv6 in brackets), as written in the URL.
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl Target {
    /// The target for a server listening on `listen`: an unspecified address
    /// (`0.0.0.0`, `::`) is asked on the loopback address of the same family.
    pub fn for_listen(listen: SocketAddr, path: &str) -> Target {
        let ip = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        let host = match ip {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Target { host, port: listen.port(), path: path.to_owned() }
    }

    /// Parses `http://host[:port][/path]` (or `host:port[/path]`). Without a path, or
    /// with `/`, `default_path` is asked. Only plain HTTP: point the check at the
    /// server's own address, not at a TLS proxy in front of it.
    pub fn parse(url: &str, default_path: &str) -> Result<Target, String> {
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(format!(
                "{url}: only http:// is supported; check the server's own address, not the TLS proxy in front of it"
            ));
        } else if url.contains("://") {
            return Err(format!("{url}: only http:// URLs are supported"));
        } else {
            url
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let path = if path.is_empty() || path == "/" { default_path.to_owned() } else { path.to_owned() };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{url}: an IPv6 address needs its closing ]"))?;
            (format!("[{host}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("{url}: no host"));
        }
        let port = match port {
            Some(port) => {
                port.parse().map_err(|_| format!("{url}: the port is not a number from 0 to 65535"))?
            }
            None => 80,
        };
        Ok(Target { host, port, path })
    }

    /// The URL this target stands for, for messages.
    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Asks `target` once, within `timeout` for the whole exchange. `Ok` holds a one-line
/// description of a 200 answer; `Err` a one-line description of anything else.
pub async fn check(target: &Target, timeout: Duration) -> Result<String, String> {
    let url = target.url();
    match tokio::time::timeout(timeout, ask(target)).await {
        Err(_) => Err(format!("{url}: no answer within {} s", timeout.as_secs_f64())),
        Ok(Err(err)) => Err(format!("{url}: {err}")),
        Ok(Ok((200, reason, body))) => Ok(format!("{url}: 200 {}", describe(&reason, &body))),
        Ok(Ok((status, reason, body))) => Err(format!("{url}: {status} {}", describe(&reason, &body))),
    }
}

/// The body when it is one short line (`ok`, `ready`, `shutting down`), else the reason.
fn describe(reason: &str, body: &str) -> String {
    let body = body.trim();
    if !body.is_empty() && body.len() <= 80 && !body.contains('\n') {
        body.to_owned()
    } else {
        reason.to_owned()
    }
}

async fn ask(target: &Target) -> Result<(u16, String, String), String> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((host, target.port))
        .await
        .map_err(|err| format!("cannot connect: {}", plain(&err)))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nhost: {}:{}\r\nuser-agent: caucus-healthcheck\r\naccept: text/plain\r\nconnection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("cannot send the request: {}", plain(&err)))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|err| format!("cannot read the answer: {}", plain(&err)))?;
    parse_answer(&answer)
}

/// An I/O error's message without the "(os error N)" suffix.
fn plain(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The status, reason and body of an HTTP/1.x answer (the body as sent, or as far as it
/// was read; a chunked body is not decoded, which only makes it look longer).
fn parse_answer(answer: &[u8]) -> Result<(u16, String, String), String> {
    if answer.is_empty() {
        return Err("the connection closed without an answer".to_owned());
    }
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts.next().and_then(|status| status.parse::<u16>().ok());
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        let shown: String = status_line.chars().take(60).collect();
        return Err(format!("not an HTTP answer: {shown:?}"));
    };
    let reason = parts.next().unwrap_or("").trim().to_owned();
    Ok((status, reason, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_a_path() {
        let target = Target::parse("http://127.0.0.1:8080", "/healthz").unwrap();
        assert_eq!(target, Target { host: "127.0.0.1".into(), port: 8080, path: "/healthz".into() });
        let target = Target::parse("http://localhost:9000/readyz", "/healthz").unwrap();
        assert_eq!(target, Target { host: "localhost".into(), port: 9000, path: "/readyz".into() });
        let target = Target::parse("127.0.0.1:8080/", "/readyz").unwrap();
        assert_eq!(target.path, "/readyz");
        let target = Target::parse("http://[::1]:8080", "/healthz").unwrap();
        assert_eq!(target.host, "[::1]");
        assert_eq!(target.url(), "http://[::1]:8080/healthz");
        assert_eq!(Target::parse("http://example.org", "/healthz").unwrap().port, 80);
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        assert!(Target::parse("https://example.org", "/healthz").unwrap_err().contains("only http://"));
        assert!(Target::parse("http://:8080", "/healthz").unwrap_err().contains("no host"));
        assert!(Target::parse("http://host:99999", "/healthz").unwrap_err().contains("port"));
        assert!(Target::parse("http://[::1:8080", "/healthz").unwrap_err().contains("]"));
    }

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let target = Target::for_listen("0.0.0.0:8080".parse().unwrap(), "/healthz");
        assert_eq!(target.url(), "http://127.0.0.1:8080/healthz");
        let target = Target::for_listen("[::]:8080".parse().unwrap(), "/readyz");
        assert_eq!(target.url(), "http://[::1]:8080/readyz");
        let target = Target::for_listen("10.0.0.5:80".parse().unwrap(), "/healthz");
        assert_eq!(target.url(), "http://10.0.0.5:80/healthz");
    }

    #[test]
    fn answers_parse() {
        let (status, _, body) = parse_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((status, body.as_str()), (200, "ok"));
        let (status, reason, body) =
            parse_answer(b"HTTP/1.1 503 Service Unavailable\r\n\r\nshutting down").unwrap();
        assert_eq!(status, 503);
        assert_eq!(describe(&reason, &body), "shutting down");
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").unwrap_err().contains("not an HTTP answer"));
        assert!(parse_answer(b"").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_fails_quickly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let target = Target::for_listen(address, "/healthz");
        let err = check(&target, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
