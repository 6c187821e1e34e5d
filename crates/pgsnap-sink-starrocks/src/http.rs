//! A small HTTP/1.1 client for Stream Load: the bottom layer, HTTP and TLS only (nothing of
//! labels, loads or retries).
//!
//! # Why it is hand-written
//!
//! Stream Load needs the request head sent alone, with `Expect: 100-continue`, and the body
//! only after the answer (spec §1.1): the FE answers `307` before any body byte and closes
//! the connection, and the BE checks the label and the headers before it answers
//! `100 Continue`, or refuses the load, and then no body byte may go. The FE's `307` must be
//! followed keeping `Authorization`, and a streamed body cannot be replayed, so it must not
//! have started before the redirect. The Rust HTTP clients do not do this (when this was
//! written):
//!
//! - hyper's client writes the body right after the head whatever `Expect` says:
//!   [hyperium/hyper#3833](https://github.com/hyperium/hyper/issues/3833) (open). The fixes
//!   proposed: a body wrapper released by the `on_informational` hook,
//!   [hyperium/hyper-util#321](https://github.com/hyperium/hyper-util/pull/321) (open), and
//!   in hyper itself [hyperium/hyper#3472](https://github.com/hyperium/hyper/pull/3472)
//!   (open) and [hyperium/hyper#4182](https://github.com/hyperium/hyper/pull/4182) (closed
//!   without merging).
//! - reqwest, built on hyper, has no `Expect: 100-continue` either:
//!   [seanmonstar/reqwest#2845](https://github.com/seanmonstar/reqwest/issues/2845) (open).
//!   It also drops `Authorization` on a redirect to another host, by design
//!   ([seanmonstar/reqwest#2113](https://github.com/seanmonstar/reqwest/issues/2113), closed
//!   as not planned), so the `307` would have to be followed by hand anyway.
//!
//! Revisit when one of these ships: a hyper HTTP/1 connection with the body held back until
//! `100 Continue`, and redirects followed by hand, could then replace [`Conn`]; the layers
//! above (the Stream Load client and the load paths) would not change.
//!
//! So this module speaks HTTP/1.1 itself: it writes the request head, waits for either
//! `100 Continue` or a final answer, and only then streams the body with chunked transfer
//! encoding.
//!
//! One request per connection (`Connection: close` is what the FE forces anyway, and a BE
//! load is long), plain TCP or rustls.

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// The largest response body we read (Stream Load answers are a few hundred bytes).
const MAX_RESPONSE_BODY: usize = 1 << 20;
/// The largest response head we accept.
const MAX_HEAD: usize = 64 << 10;

/// A parsed `http://` or `https://` base address (no path), e.g. `http://fe1:8030`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/]`. User info in the URL is refused (credentials are
    /// configured separately and never appear in addresses, which are logged).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        if url.contains('@') {
            // Never echo such an address: it may hold a password.
            return Err(
                "addresses must not carry a user or password (found '@'); configure them separately"
                    .into(),
            );
        }
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("http://") {
            (false, &url[7..])
        } else if lower.starts_with("https://") {
            (true, &url[8..])
        } else {
            return Err(format!("{url:?}: expected an http:// or https:// address"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) =
                v6.split_once(']').ok_or_else(|| format!("{url:?}: unterminated IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{url:?}: invalid port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url:?}: invalid address")),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => {
                    (h.to_owned(), p.parse().map_err(|_| format!("{url:?}: invalid port {p:?}"))?)
                }
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Self { https, host, port })
    }

    /// Parses a `Location` header: an absolute URL. Returns the endpoint and the path+query.
    pub(crate) fn parse_location(location: &str) -> Result<(Self, String), String> {
        let ep = Self::parse(location)?;
        let after_scheme = location.split_once("://").map(|x| x.1).unwrap_or("");
        let path = match after_scheme.find('/') {
            Some(i) => after_scheme[i..].to_owned(),
            None => "/".to_owned(),
        };
        Ok((ep, path))
    }

    fn host_header(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Builds the rustls configuration for HTTPS: the web PKI roots, plus the certificates of
/// `ca_file` (PEM) when given.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                Error::Config(format!("CA file {}: invalid PEM: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                Error::Config(format!("CA file {}: unusable certificate: {e}", path.display()))
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::Config(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One HTTP/1.1 connection, used for one request.
pub(crate) struct Conn {
    io: Pin<Box<dyn Io>>,
    buf: BytesMut,
    endpoint: Endpoint,
    io_timeout: Duration,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// A response head.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyFraming {
    /// No body (`Content-Length: 0`).
    Empty,
    /// `Transfer-Encoding: chunked` (the length is not known in advance).
    Chunked,
}

/// Connects to `endpoint` (TCP, then TLS for https).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<Conn, Error> {
    let addr = (endpoint.host.as_str(), endpoint.port);
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Connect {
            address: endpoint.to_string(),
            source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| Error::Connect { address: endpoint.to_string(), source })?;
    tcp.set_nodelay(true).ok();
    let io: Pin<Box<dyn Io>> = if endpoint.https {
        let config = tls.ok_or_else(|| Error::Config("https address without TLS config".into()))?;
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
            Error::Config(format!("{endpoint}: {:?} is not a valid TLS server name", endpoint.host))
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        let stream = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::Connect {
                address: endpoint.to_string(),
                source: io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
            })?
            .map_err(|source| Error::Tls { address: endpoint.to_string(), source })?;
        Box::pin(stream)
    } else {
        Box::pin(tcp)
    };
    Ok(Conn { io, buf: BytesMut::with_capacity(8192), endpoint: endpoint.clone(), io_timeout })
}

impl Conn {
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn io_err(&self, what: &str, e: io::Error) -> Error {
        Error::Io { address: self.endpoint.to_string(), what: what.to_owned(), source: e }
    }

    /// Writes the request head. `Host`, the framing header and `Connection: close` are
    /// added here; `headers` must not contain them.
    pub(crate) async fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        framing: BodyFraming,
        expect_continue: bool,
    ) -> Result<(), Error> {
        let mut head = String::with_capacity(512);
        head.push_str(method);
        head.push(' ');
        head.push_str(path);
        head.push_str(" HTTP/1.1\r\nHost: ");
        head.push_str(&self.endpoint.host_header());
        head.push_str("\r\n");
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        match framing {
            BodyFraming::Empty => head.push_str("Content-Length: 0\r\n"),
            BodyFraming::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        if expect_continue {
            head.push_str("Expect: 100-continue\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        self.write_parts("sending the request", &[head.as_bytes()], true).await
    }

    /// Writes `parts` in order (and flushes when asked), giving up after the I/O timeout.
    async fn write_parts(&mut self, what: &str, parts: &[&[u8]], flush: bool) -> Result<(), Error> {
        let io = &mut self.io;
        let r = tokio::time::timeout(self.io_timeout, async {
            for p in parts {
                io.write_all(p).await?;
            }
            if flush { io.flush().await } else { Ok(()) }
        })
        .await;
        match r {
            Ok(r) => r.map_err(|e| self.io_err(what, e)),
            Err(_) => {
                Err(self.io_err(what, io::Error::new(io::ErrorKind::TimedOut, "write timed out")))
            }
        }
    }

    /// Reads one response head (which may be an interim `100 Continue`), waiting at most
    /// `wait`.
    pub(crate) async fn read_head(&mut self, wait: Duration) -> Result<Head, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = Head {
                            status: resp.code.unwrap_or(0),
                            headers: resp
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_owned(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect(),
                        };
                        self.buf.advance(n);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => {
                        return Err(Error::Protocol {
                            address: self.endpoint.to_string(),
                            message: format!("malformed response head: {e}"),
                        });
                    }
                }
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error::Protocol {
                    address: self.endpoint.to_string(),
                    message: "response head too large".into(),
                });
            }
            let n = match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
                Ok(r) => r.map_err(|e| self.io_err("reading the response", e))?,
                Err(_) => {
                    return Err(self.io_err(
                        "waiting for the response",
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {} s", wait.as_secs()),
                        ),
                    ));
                }
            };
            if n == 0 {
                return Err(self.io_err(
                    "reading the response",
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before an answer",
                    ),
                ));
            }
        }
    }

    /// Reads the body of a final response (Content-Length, chunked, or up to EOF).
    pub(crate) async fn read_body(&mut self, head: &Head) -> Result<Bytes, Error> {
        if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
            return Ok(Bytes::new());
        }
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return self.read_chunked().await;
        }
        if let Some(len) = head.header("content-length") {
            let len: usize = len.trim().parse().map_err(|_| Error::Protocol {
                address: self.endpoint.to_string(),
                message: format!("invalid Content-Length {len:?}"),
            })?;
            if len > MAX_RESPONSE_BODY {
                return Err(self.too_large());
            }
            while self.buf.len() < len {
                self.fill("reading the response body").await?;
            }
            return Ok(self.buf.split_to(len).freeze());
        }
        loop {
            if self.buf.len() > MAX_RESPONSE_BODY {
                return Err(self.too_large());
            }
            if self.read_more("reading the response body").await? == 0 {
                return Ok(self.buf.split().freeze());
            }
        }
    }

    fn too_large(&self) -> Error {
        Error::Protocol {
            address: self.endpoint.to_string(),
            message: "response body too large".into(),
        }
    }

    /// Reads more into the buffer; `Ok(0)` at end of stream.
    async fn read_more(&mut self, what: &str) -> Result<usize, Error> {
        match tokio::time::timeout(self.io_timeout, self.io.read_buf(&mut self.buf)).await {
            Ok(r) => r.map_err(|e| self.io_err(what, e)),
            Err(_) => {
                Err(self.io_err(what, io::Error::new(io::ErrorKind::TimedOut, "read timed out")))
            }
        }
    }

    async fn fill(&mut self, what: &str) -> Result<(), Error> {
        if self.read_more(what).await? == 0 {
            return Err(self
                .io_err(what, io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")));
        }
        Ok(())
    }

    async fn read_chunked(&mut self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                self.fill("reading the response body").await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            self.buf.advance(line_end + 2);
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| Error::Protocol {
                address: self.endpoint.to_string(),
                message: format!("invalid chunk size {size_text:?}"),
            })?;
            if size == 0 {
                // Trailers, up to the empty line; the connection closes after this anyway.
                return Ok(out.freeze());
            }
            if out.len() + size > MAX_RESPONSE_BODY {
                return Err(self.too_large());
            }
            while self.buf.len() < size + 2 {
                self.fill("reading the response body").await?;
            }
            out.extend_from_slice(&self.buf[..size]);
            self.buf.advance(size + 2);
        }
    }

    /// Writes one chunk of a chunked body (nothing for an empty slice).
    pub(crate) async fn write_chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let header = format!("{:x}\r\n", data.len());
        self.write_parts("sending the body", &[header.as_bytes(), data, b"\r\n"], false).await
    }

    /// Ends a chunked body.
    pub(crate) async fn finish_body(&mut self) -> Result<(), Error> {
        self.write_parts("sending the body", &[b"0\r\n\r\n"], true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tls_config`'s error for a CA file holding `contents`; asserts that it names the file.
    fn ca_file_error(name: &str, contents: &[u8]) -> String {
        let path = std::env::temp_dir().join(format!("pgsnap-sr-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        let e = tls_config(Some(&path)).unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        assert!(e.contains(&path.display().to_string()), "{e}");
        e
    }

    #[test]
    fn bad_ca_files_are_named() {
        let e = ca_file_error("none.pem", b"not a certificate\n");
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = ca_file_error(
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = ca_file_error(
            "base64.pem",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        assert!(e.contains("invalid PEM"), "{e}");
        let e = ca_file_error("cut.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert!(e.contains("invalid PEM"), "{e}");
        let e = ca_file_error(
            "der.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(e.contains("unusable certificate"), "{e}");
        let missing = std::env::temp_dir().join("pgsnap-sr-no-such-ca.pem");
        let e = tls_config(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("cannot read the CA file") && e.contains("no-such-ca.pem"), "{e}");
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://fe1:8030").unwrap();
        assert_eq!((e.https, e.host.as_str(), e.port), (false, "fe1", 8030));
        let e = Endpoint::parse("https://fe1/").unwrap();
        assert_eq!((e.https, e.port), (true, 443));
        let e = Endpoint::parse("http://[::1]:8040").unwrap();
        assert_eq!(e.to_string(), "http://[::1]:8040");
        assert!(Endpoint::parse("fe1:8030").is_err());
        let e = Endpoint::parse("HTTP://root:pw@fe1:8030").unwrap_err();
        assert!(!e.contains("pw"), "{e}");
        assert!(!Endpoint::parse("root:pw@fe1").unwrap_err().contains("pw"));
        assert!(Endpoint::parse("HTTPS://fe1:8030").unwrap().https);
        assert!(Endpoint::parse("http://fe1:x").is_err());
        let (e, p) =
            Endpoint::parse_location("http://10.0.0.2:8040/api/db/t/_stream_load?x=1").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, p.as_str()),
            ("10.0.0.2", 8040, "/api/db/t/_stream_load?x=1")
        );
    }
}
