//! An HTTPS front for the plain-HTTP test doubles: TLS with a [`TestCerts`] server
//! certificate, optional basic authentication and an optional redirect, forwarding every
//! request it lets through to the upstream double (say
//! [`ConnectDouble`](crate::connect::ConnectDouble)).
//!
//! [`HttpsFront`] stands for what sits in front of a production Kafka Connect REST API: a
//! TLS listener with a private CA and `BasicAuthSecurityRestExtension` (or a reverse proxy
//! doing the same). Per connection it reads one HTTP/1.1 request, then:
//!
//! - with [`FrontOptions::basic_auth`] set and no `Authorization: Basic` header matching it:
//!   `401 Unauthorized` with `WWW-Authenticate: Basic realm="connect"` and Connect's error
//!   body, nothing forwarded;
//! - with [`FrontOptions::redirect_to`] set: `307 Temporary Redirect` to that base plus the
//!   request path, nothing forwarded;
//! - otherwise: the request bytes go to the upstream over plain TCP and its answer comes back
//!   until the upstream closes (the doubles answer one request per connection).
//!
//! It records every request line and the number of failed TLS handshakes (a client that
//! does not trust the certificate aborts the handshake).
//!
//! # Example
//! ```no_run
//! # async fn f() {
//! use pgsnap_test_support::TestCerts;
//! use pgsnap_test_support::connect::{ConnectDouble, State};
//! use pgsnap_test_support::https_front::{FrontOptions, HttpsFront};
//! let certs = TestCerts::generate(&["127.0.0.1"]);
//! let double = ConnectDouble::start(State::default()).await;
//! let front = HttpsFront::start(
//!     &double.url,
//!     &certs,
//!     FrontOptions { basic_auth: Some(("pgsnap".into(), "s3cret".into())), ..Default::default() },
//! )
//! .await;
//! assert!(front.url.starts_with("https://127.0.0.1:"));
//! # }
//! ```

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::TestCerts;

/// What the front does besides TLS; give it to [`HttpsFront::start`].
#[derive(Debug, Clone, Default)]
pub struct FrontOptions {
    /// `(user, password)` every request must carry as `Authorization: Basic`; `None` lets
    /// every request through.
    pub basic_auth: Option<(String, String)>,
    /// Answer every (authorized) request with `307` to this base URL plus the request path.
    pub redirect_to: Option<String>,
}

/// What the front has seen.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<String>,
    handshake_failures: usize,
}

/// The HTTPS front (see the module doc). It runs until the test's tokio runtime ends.
#[derive(Debug, Clone)]
pub struct HttpsFront {
    /// `https://127.0.0.1:PORT` (the certificate must list `127.0.0.1`).
    pub url: String,
    seen: Arc<Mutex<Seen>>,
}

impl HttpsFront {
    /// Listens on a free port of 127.0.0.1 (on the current tokio runtime) with `certs`'
    /// server certificate, forwarding to `upstream` (`http://host:port`).
    ///
    /// # Panics
    /// If the certificate or key cannot be read, or `upstream` is not `http://host:port`.
    pub async fn start(upstream: &str, certs: &TestCerts, options: FrontOptions) -> HttpsFront {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("upstream {upstream:?} is not http://host:port"))
            .trim_end_matches('/')
            .to_owned();
        let acceptor = acceptor(certs);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        let options = Arc::new(options);
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (acceptor, seen, options, upstream) =
                    (acceptor.clone(), Arc::clone(&shared), Arc::clone(&options), upstream.clone());
                tokio::spawn(async move {
                    match acceptor.accept(sock).await {
                        Ok(tls) => serve(tls, &upstream, &options, &seen).await,
                        Err(_) => seen.lock().unwrap().handshake_failures += 1,
                    }
                });
            }
        });
        HttpsFront { url, seen }
    }

    /// `METHOD path` of every request read so far (authorized or not).
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().requests.clone()
    }

    /// How many TLS handshakes failed (a client refusing the certificate, say).
    pub fn handshake_failures(&self) -> usize {
        self.seen.lock().unwrap().handshake_failures
    }
}

/// The TLS acceptor for `certs`' server certificate (rustls on ring).
fn acceptor(certs: &TestCerts) -> tokio_rustls::TlsAcceptor {
    let chain: Vec<_> = CertificateDer::pem_file_iter(&certs.server_cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .unwrap_or_else(|e| panic!("reading {}: {e}", certs.server_cert.display()));
    let key = PrivateKeyDer::from_pem_file(&certs.server_key)
        .unwrap_or_else(|e| panic!("reading {}: {e}", certs.server_key.display()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// One request: read it, answer 401 or 307, or forward it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: S,
    upstream: &str,
    options: &FrontOptions,
    seen: &Mutex<Seen>,
) {
    let Some((raw, line, authorization)) = read_request(&mut tls).await else { return };
    seen.lock().unwrap().requests.push(line.clone());
    let authorized = match &options.basic_auth {
        None => true,
        Some((user, password)) => {
            let want =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            authorization.as_deref().and_then(|v| v.strip_prefix("Basic ")) == Some(want.as_str())
        }
    };
    if !authorized {
        let body = r#"{"error_code":401,"message":"User cannot access the resource."}"#;
        let head = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"connect\"\r\n";
        answer(&mut tls, head, body).await;
        return;
    }
    if let Some(base) = &options.redirect_to {
        let path = line.split(' ').nth(1).unwrap_or("/");
        let head = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {base}{path}\r\n");
        answer(&mut tls, &head, "").await;
        return;
    }
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        answer(&mut tls, "HTTP/1.1 502 Bad Gateway\r\n", "upstream unreachable").await;
        return;
    };
    if up.write_all(&raw).await.is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response).await;
    let _ = tls.write_all(&response).await;
    let _ = tls.shutdown().await;
}

/// Reads one request (head and a `Content-Length` body): its bytes, `METHOD path` and the
/// `Authorization` header; `None` when the client goes away first.
async fn read_request<S: AsyncRead + Unpin>(
    sock: &mut S,
) -> Option<(Vec<u8>, String, Option<String>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head) = req.parse(&buf).ok()? {
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
            };
            let len = header("content-length").map_or(0, |v| v.parse::<usize>().unwrap_or(0));
            if buf.len() >= head + len {
                let line = format!("{} {}", req.method.unwrap_or("?"), req.path.unwrap_or("?"));
                let authorization = header("authorization");
                buf.truncate(head + len);
                return Some((buf, line, authorization));
            }
        }
    }
}

/// Writes a JSON answer with `head` (status line and extra headers) and closes.
async fn answer<S: AsyncWrite + Unpin>(sock: &mut S, head: &str, body: &str) {
    let out = format!(
        "{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(out.as_bytes()).await;
    let _ = sock.shutdown().await;
}
