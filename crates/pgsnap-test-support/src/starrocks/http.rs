//! A minimal HTTP/1.1 server side for the StarRocks test double.
//!
//! Own code on a tokio `TcpStream` (request heads parsed with `httparse`) instead of hyper,
//! because the double needs exact control over `100 Continue`: StarRocks' BE validates the
//! request head *before* it lets libevent send `100 Continue`, and the FE never sends it
//! (spec §1.1 steps 2, 4 and 6).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the double waits for more bytes of a request before giving up on the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head the double accepts.
const MAX_HEAD: usize = 64 * 1024;

/// A parsed request head.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `PUT`, `GET`, ...
    pub(crate) method: String,
    /// The raw path, without the query.
    pub(crate) path: String,
    /// The raw query (without `?`), if the target had one.
    pub(crate) query: Option<String>,
    /// The HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    /// Headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
}

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body (no `Content-Length`, or `Content-Length: 0`, and not chunked).
    Empty,
    /// `Content-Length: n` with n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Request {
    /// The first header named `name` (case-insensitive), trimmed.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// Like [`Request::header`], but an empty value counts as absent (StarRocks tests
    /// `header(...).empty()` everywhere).
    pub(crate) fn header_nonempty(&self, name: &str) -> Option<&str> {
        self.header(name).filter(|v| !v.is_empty())
    }

    /// A URL-decoded query parameter.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k) == name).then(|| url_decode(v))
        })
    }

    /// The body framing; `Err` for a malformed `Content-Length`.
    pub(crate) fn body_kind(&self) -> Result<BodyKind, String> {
        if let Some(te) = self.header("transfer-encoding") {
            if te.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked") {
                return Ok(BodyKind::Chunked);
            }
            return Err(format!("unsupported Transfer-Encoding: {te}"));
        }
        match self.header("content-length") {
            None => Ok(BodyKind::Empty),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => Ok(BodyKind::Empty),
                Ok(n) => Ok(BodyKind::Length(n)),
                Err(_) => Err(format!("invalid Content-Length: {v}")),
            },
        }
    }

    /// The `Content-Length` value, when one was sent and parses.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// Whether the client sent `Expect: 100-continue`.
    pub(crate) fn expects_continue(&self) -> bool {
        self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    /// Whether the connection must be closed after this exchange (HTTP/1.1 `Connection:
    /// close`, or HTTP/1.0 without `Connection: keep-alive`).
    pub(crate) fn wants_close(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let has = |t: &str| conn.split(',').any(|x| x.trim() == t);
        if self.minor_version == 0 { !has("keep-alive") } else { has("close") }
    }

    /// The user and password of a `Basic` `Authorization` header, if there is a valid one.
    pub(crate) fn basic_auth(&self) -> Option<(String, String)> {
        use base64::Engine as _;
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// Percent-decoding (`+` stays `+`: paths and StarRocks labels do not use form encoding).
pub(crate) fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Why reading a body stopped early.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The peer closed (or stopped sending) before the announced length; `received` bytes came.
    Short {
        /// Bytes received.
        received: u64,
    },
    /// More than the allowed number of bytes (chunked bodies only).
    TooLarge {
        /// Bytes received so far.
        received: u64,
    },
    /// The body was stopped on purpose after `received` bytes (fault injection).
    Stopped {
        /// Bytes received.
        received: u64,
    },
    /// Malformed chunked framing.
    Malformed(String),
    /// An I/O error.
    Io(io::Error),
}

/// One server-side connection.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The peer's address.
    pub(crate) peer: SocketAddr,
}

impl Conn {
    /// Wraps an accepted stream.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        let _ = stream.set_nodelay(true);
        Conn { stream, buf: Vec::new(), peer }
    }

    /// Reads more bytes into the buffer; `Ok(0)` on EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 * 1024);
        tokio::time::timeout(READ_TIMEOUT, self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timeout"))?
    }

    /// Reads the next request head. `Ok(None)` on a clean EOF between requests.
    /// The next request head, or `None` at end of stream or after answering a malformed
    /// one with `400 Bad Request`.
    pub(crate) async fn next_request(&mut self) -> Option<Request> {
        match self.read_head().await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.send_response(400, "Bad Request", &[], b"", true).await;
                None
            }
        }
    }

    pub(crate) async fn read_head(&mut self) -> io::Result<Option<Request>> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let target = req.path.unwrap_or("/");
                        let (path, query) = match target.split_once('?') {
                            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                            None => (target.to_owned(), None),
                        };
                        let request = Request {
                            method: req.method.unwrap_or("").to_owned(),
                            path,
                            query,
                            minor_version: req.version.unwrap_or(1),
                            headers: req
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
                        self.buf.drain(..n);
                        return Ok(Some(request));
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "head too large",
                            ));
                        }
                    }
                    Err(e) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                    }
                }
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside a head"));
            }
        }
    }

    /// Reads a body. `max` caps chunked bodies (a `Content-Length` body is checked against
    /// its limit before this is called); `stop_after` stops after that many body bytes (the
    /// `ResetMidBody` fault).
    pub(crate) async fn read_body(
        &mut self,
        kind: BodyKind,
        max: u64,
        stop_after: Option<u64>,
    ) -> Result<Vec<u8>, BodyError> {
        match kind {
            BodyKind::Empty => Ok(Vec::new()),
            BodyKind::Length(n) => {
                let want = stop_after.map_or(n, |s| s.min(n));
                while (self.buf.len() as u64) < want {
                    match self.fill().await {
                        Ok(0) | Err(_) => {
                            let received = self.buf.len() as u64;
                            self.buf.clear();
                            return Err(BodyError::Short { received });
                        }
                        Ok(_) => {}
                    }
                }
                let body: Vec<u8> = self.buf.drain(..want as usize).collect();
                if want < n {
                    return Err(BodyError::Stopped { received: want });
                }
                Ok(body)
            }
            BodyKind::Chunked => self.read_chunked(max, stop_after).await,
        }
    }

    async fn read_line(&mut self) -> Result<String, BodyError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(BodyError::Malformed("chunk line too long".into()));
            }
            match self.fill().await {
                Ok(0) => return Err(BodyError::Short { received: 0 }),
                Ok(_) => {}
                Err(e) => return Err(BodyError::Io(e)),
            }
        }
    }

    async fn read_chunked(
        &mut self,
        max: u64,
        stop_after: Option<u64>,
    ) -> Result<Vec<u8>, BodyError> {
        let mut body = Vec::new();
        let short = |body: &Vec<u8>| BodyError::Short { received: body.len() as u64 };
        loop {
            let line = self.read_line().await.map_err(|e| match e {
                BodyError::Short { .. } => short(&body),
                e => e,
            })?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| BodyError::Malformed(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let trailer = self.read_line().await.map_err(|e| match e {
                        BodyError::Short { .. } => short(&body),
                        e => e,
                    })?;
                    if trailer.is_empty() {
                        return Ok(body);
                    }
                }
            }
            let mut remaining = size;
            while remaining > 0 {
                if self.buf.is_empty() {
                    match self.fill().await {
                        Ok(0) | Err(_) => return Err(short(&body)),
                        Ok(_) => {}
                    }
                }
                let mut take = remaining.min(self.buf.len() as u64);
                if let Some(stop) = stop_after {
                    take = take.min(stop.saturating_sub(body.len() as u64));
                    if take == 0 {
                        return Err(BodyError::Stopped { received: body.len() as u64 });
                    }
                }
                body.extend(self.buf.drain(..take as usize));
                remaining -= take;
                if body.len() as u64 > max {
                    return Err(BodyError::TooLarge { received: body.len() as u64 });
                }
            }
            if stop_after.is_some_and(|s| body.len() as u64 >= s) {
                return Err(BodyError::Stopped { received: body.len() as u64 });
            }
            let crlf = self.read_line().await.map_err(|e| match e {
                BodyError::Short { .. } => short(&body),
                e => e,
            })?;
            if !crlf.is_empty() {
                return Err(BodyError::Malformed("chunk data not followed by CRLF".into()));
            }
        }
    }

    /// Whether bytes that cannot start a new request already follow the body (the client sent
    /// more than its `Content-Length`). Looks only at what has arrived, without waiting.
    pub(crate) fn has_trailing_garbage(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        if self.buf.is_empty() {
            return false;
        }
        let mut headers = [httparse::EMPTY_HEADER; 100];
        httparse::Request::new(&mut headers).parse(&self.buf).is_err()
    }

    /// Reads and discards whatever the client sends for up to `window`, returning the count
    /// (used by the FE to measure body bytes that reach it although they must not).
    pub(crate) async fn drain_for(&mut self, window: Duration) -> u64 {
        let mut total = self.buf.len() as u64;
        self.buf.clear();
        let deadline = tokio::time::Instant::now() + window;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => total += n as u64,
                _ => return total,
            }
        }
    }

    /// Sends `HTTP/1.1 100 Continue`.
    pub(crate) async fn send_continue(&mut self) -> io::Result<()> {
        self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        self.stream.flush().await
    }

    /// Sends a complete response with `Content-Length`; `close` adds `Connection: close`.
    pub(crate) async fn send_response(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(&str, String)],
        body: &[u8],
        close: bool,
    ) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Closes the write side (the socket itself closes on drop).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
