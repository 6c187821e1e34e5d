//! TLS (rustls) for tokio-postgres connections and for pgsnap's own
//! replication connection, with libpq's `sslmode` semantics.
//!
//! [`client_config`] turns a [`TlsMode`] and an optional `sslrootcert` into a
//! rustls [`ClientConfig`]:
//!
//! | mode          | without `sslrootcert`                      | with `sslrootcert`                  |
//! |---------------|--------------------------------------------|-------------------------------------|
//! | `disable`     | no TLS (`None`)                            | no TLS (`None`)                     |
//! | `prefer`      | encrypt, certificate not verified          | encrypt, chain verified, any name   |
//! | `require`     | encrypt, certificate not verified          | encrypt, chain verified, any name   |
//! | `verify-ca`   | error: a root certificate file is needed   | chain verified, any name            |
//! | `verify-full` | chain verified against the Mozilla roots (`webpki-roots`), name checked | chain verified, name checked |
//!
//! The ring crypto provider is always used explicitly, so no process-wide
//! default provider needs to be installed. The ALPN protocol `postgresql` is
//! offered (PostgreSQL 17 requires it for `sslnegotiation=direct`; older
//! servers ignore it).
//!
//! [`make_tls_connect`] wraps a config into [`MakeTls`], which
//! tokio-postgres' [`Config::connect`](tokio_postgres::Config::connect)
//! accepts and which works over any stream (also a plain
//! [`tokio::net::TcpStream`] for a hand-made replication connection).
//!
//! # Differences from libpq
//!
//! - With `prefer`, libpq retries without TLS when the TLS handshake fails;
//!   tokio-postgres does not, so a handshake failure is an error.
//! - Client certificates (`sslcert`/`sslkey`) and CRLs are not supported.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conninfo::TlsMode;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The `sslrootcert` file could not be read.
    #[error("could not read sslrootcert file {}: {source}", path.display())]
    ReadRootCert {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The `sslrootcert` file holds no PEM certificate.
    #[error("sslrootcert file {} contains no PEM certificate", path.display())]
    NoRootCert {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the `sslrootcert` file was rejected.
    #[error("sslrootcert file {} contains an unusable certificate: {source}", path.display())]
    BadRootCert {
        /// The file.
        path: PathBuf,
        /// Why rustls rejected it.
        #[source]
        source: rustls::Error,
    },
    /// `verify-ca` needs a root certificate file.
    #[error(
        "sslmode=verify-ca needs a root certificate file: set sslrootcert or PGSSLROOTCERT, \
         or use sslmode=verify-full to verify against the well-known public roots"
    )]
    RootCertRequired,
    /// rustls refused the configuration.
    #[error("could not build the TLS configuration: {source}")]
    Config {
        /// The rustls error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Builds the rustls configuration for a libpq `sslmode` and optional root
/// certificate file (PEM, possibly several certificates). `Disable` gives
/// `None`.
///
/// See the [module documentation](self) for what each mode verifies.
///
/// # Errors
///
/// [`TlsError`] if `sslrootcert` cannot be read or holds no usable
/// certificate, or for `verify-ca` without `sslrootcert`.
///
/// # Example
///
/// ```
/// use pgsnap_source::conninfo::TlsMode;
/// use pgsnap_source::tls::client_config;
///
/// assert!(client_config(TlsMode::Disable, None).unwrap().is_none());
/// assert!(client_config(TlsMode::Require, None).unwrap().is_some());
/// ```
pub fn client_config(
    mode: TlsMode,
    sslrootcert: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, sslrootcert) {
        (TlsMode::Disable, _) => return Ok(None),
        (TlsMode::Prefer | TlsMode::Require, None) => {
            Arc::new(NoVerification { algorithms: provider.signature_verification_algorithms })
        }
        (TlsMode::Prefer | TlsMode::Require | TlsMode::VerifyCa, Some(path)) => {
            Arc::new(ChainOnly(webpki_verifier(load_roots(path)?, &provider)?))
        }
        (TlsMode::VerifyCa, None) => return Err(TlsError::RootCertRequired),
        (TlsMode::VerifyFull, Some(path)) => webpki_verifier(load_roots(path)?, &provider)?,
        (TlsMode::VerifyFull, None) => {
            let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            webpki_verifier(roots, &provider)?
        }
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config { source: Box::new(e) })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Wraps a TLS configuration into a connector for
/// [`tokio_postgres::Config::connect`]. `None` means no TLS.
///
/// `None` must go with `SslMode::Disable` in the tokio-postgres config (as
/// [`ConnSpec`](crate::conninfo::ConnSpec) arranges for `sslmode=disable`):
/// unlike `NoTls`, a `MakeTls` cannot tell tokio-postgres to skip TLS
/// negotiation (that hook is private to tokio-postgres), so with `Prefer`
/// and a server that offers TLS the connection fails with a clear error
/// instead of falling back.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pgsnap_source::conninfo::TlsMode;
/// use pgsnap_source::tls::{client_config, make_tls_connect};
///
/// let config: tokio_postgres::Config = "host=db1 user=app sslmode=require".parse()?;
/// let tls = make_tls_connect(client_config(TlsMode::Require, None)?);
/// let (client, connection) = config.connect(tls).await?;
/// # drop((client, connection)); Ok(()) }
/// ```
pub fn make_tls_connect(cfg: Option<Arc<ClientConfig>>) -> MakeTls {
    MakeTls { inner: cfg.map(|cfg| MakeRustlsConnect::new(Arc::unwrap_or_clone(cfg))) }
}

/// A [`MakeTlsConnect`] for tokio-postgres built by [`make_tls_connect`]:
/// rustls, or no TLS at all.
#[derive(Clone)]
pub struct MakeTls {
    inner: Option<MakeRustlsConnect>,
}

impl MakeTls {
    /// Whether this connector does TLS (it was built from `Some` config).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }
}

impl fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeTls").field("enabled", &self.is_enabled()).finish()
    }
}

/// The per-connection connector of tokio-postgres-rustls (a concrete type;
/// the stream type parameter does not change it).
type InnerConnect = <MakeRustlsConnect as MakeTlsConnect<tokio::net::TcpStream>>::TlsConnect;

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = Box<dyn StdError + Send + Sync>;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, Self::Error> {
        let inner = match &mut self.inner {
            None => ConnectorInner::Disabled,
            // tokio-postgres asks for a connector before knowing whether TLS
            // will be negotiated, with "" for Unix sockets: report a bad
            // server name only if a handshake is actually attempted.
            Some(_) if ServerName::try_from(domain).is_err() => {
                ConnectorInner::InvalidName(domain.to_owned())
            }
            Some(make) => {
                ConnectorInner::Rustls(MakeTlsConnect::<S>::make_tls_connect(make, domain)?)
            }
        };
        Ok(RustlsConnector { inner })
    }
}

/// The connector for one connection, made by [`MakeTls`].
pub struct RustlsConnector {
    inner: ConnectorInner,
}

enum ConnectorInner {
    Rustls(InnerConnect),
    Disabled,
    InvalidName(String),
}

impl fmt::Debug for RustlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            ConnectorInner::Rustls(_) => "rustls",
            ConnectorInner::Disabled => "disabled",
            ConnectorInner::InvalidName(_) => "invalid server name",
        };
        f.debug_struct("RustlsConnector").field("state", &state).finish()
    }
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        match self.inner {
            ConnectorInner::Rustls(connect) => {
                let handshake = TlsConnect::<S>::connect(connect, stream);
                Box::pin(async move {
                    handshake.await.map(|inner| RustlsStream { inner }).map_err(Into::into)
                })
            }
            ConnectorInner::Disabled => Box::pin(std::future::ready(Err(
                "the server accepted TLS but TLS is disabled for this connection; \
                 set the tokio-postgres ssl_mode to Disable when using MakeTls without a config"
                    .into(),
            ))),
            ConnectorInner::InvalidName(name) => Box::pin(std::future::ready(Err(format!(
                "`{name}` is not a valid TLS server name"
            )
            .into()))),
        }
    }
}

/// The TLS stream type of the underlying connector.
type InnerStream<S> = <InnerConnect as TlsConnect<S>>::Stream;

/// A TLS-wrapped connection made by [`MakeTls`].
pub struct RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    inner: InnerStream<S>,
}

impl<S> fmt::Debug for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsStream").finish_non_exhaustive()
    }
}

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

impl<S> AsyncRead for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads the PEM certificates of an `sslrootcert` file.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path)
        .map_err(|source| TlsError::ReadRootCert { path: path.to_owned(), source })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::ReadRootCert { path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoRootCert { path: path.to_owned() });
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|source| TlsError::BadRootCert { path: path.to_owned(), source })?;
    }
    Ok(roots)
}

/// The standard rustls verifier (chain and host name) over `roots`.
fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Config { source: Box::new(e) })
}

/// libpq's `verify-ca` (and `require` with a root file): the chain must lead
/// to a trusted root, the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The webpki verifier checks the chain first and the name last, so
        // a name error means the chain was fine.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// libpq's `require` (and `prefer`) without a root file: encryption only,
/// any certificate is accepted. The handshake signatures are still checked,
/// so the session really is keyed to the presented certificate.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::resolve_with_env;
    use crate::conninfo::test_util::TempDir;
    use pgsnap_test_support::{ClusterOptions, PgCluster, TestCerts};

    // --- configuration building ---

    #[test]
    fn disable_builds_no_config() {
        assert!(client_config(TlsMode::Disable, None).unwrap().is_none());
        // Even with a root file that does not exist: nothing is read.
        let missing = Path::new("/nonexistent/root.crt");
        assert!(client_config(TlsMode::Disable, Some(missing)).unwrap().is_none());
        assert!(!make_tls_connect(None).is_enabled());
    }

    #[test]
    fn every_encrypting_mode_builds_a_config() {
        for mode in [TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyFull] {
            let cfg =
                client_config(mode, None).unwrap().unwrap_or_else(|| panic!("{mode}: no config"));
            assert_eq!(cfg.alpn_protocols, [b"postgresql".to_vec()]);
            assert!(make_tls_connect(Some(cfg)).is_enabled());
        }
        let certs = certs();
        for mode in [TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull] {
            assert!(client_config(mode, Some(&certs.ca_cert)).unwrap().is_some(), "{mode}");
        }
    }

    #[test]
    fn verify_ca_needs_a_root_file() {
        let err = client_config(TlsMode::VerifyCa, None).unwrap_err();
        assert!(matches!(err, TlsError::RootCertRequired));
        assert!(err.to_string().contains("sslrootcert"), "{err}");
    }

    #[test]
    fn bad_root_files_are_reported() {
        let dir = TempDir::new();
        let missing = dir.path().join("missing.crt");
        let err = client_config(TlsMode::VerifyFull, Some(&missing)).unwrap_err();
        assert!(matches!(err, TlsError::ReadRootCert { .. }), "{err}");
        assert!(err.to_string().contains("missing.crt"), "{err}");

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(TlsMode::Require, Some(&empty)).unwrap_err();
        assert!(matches!(err, TlsError::NoRootCert { .. }), "{err}");

        let garbage = dir.path().join("garbage.crt");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        let err = client_config(TlsMode::VerifyCa, Some(&garbage)).unwrap_err();
        assert!(matches!(err, TlsError::BadRootCert { .. }), "{err}");
    }

    #[test]
    fn conn_spec_make_tls_follows_the_mode() {
        let env = |_: &str| None;
        let spec = resolve_with_env("host=h user=u sslmode=disable", &env).unwrap();
        assert!(!spec.make_tls().unwrap().is_enabled());
        let spec = resolve_with_env("host=h user=u sslmode=verify-full", &env).unwrap();
        assert!(spec.make_tls().unwrap().is_enabled());
    }

    #[test]
    fn make_tls_fits_tokio_postgres_and_raw_tcp() {
        fn make_tls_for<S, T: MakeTlsConnect<S> + Clone + Send + Sync + 'static>() {}
        fn connector_for<S, T: TlsConnect<S> + Send>() {}
        fn assert_send<T: Send>(_: &T) {}
        make_tls_for::<tokio_postgres::Socket, MakeTls>();
        make_tls_for::<tokio::net::TcpStream, MakeTls>();
        connector_for::<tokio::net::TcpStream, RustlsConnector>();
        // The connect future can be spawned.
        let config: tokio_postgres::Config = "host=h user=u".parse().unwrap();
        let tls = make_tls_connect(client_config(TlsMode::Require, None).unwrap());
        let fut = config.connect(tls);
        assert_send(&fut);
    }

    // --- live servers ---

    fn certs() -> TestCerts {
        TestCerts::generate(&["localhost", "127.0.0.1"])
    }

    /// Connection options for the superuser on `pg`, followed by `extra`.
    fn conninfo(pg: &PgCluster, extra: &str) -> String {
        format!("port={} user=postgres dbname=postgres connect_timeout=20 {extra}", pg.port())
    }

    /// Connects through [`ConnSpec::make_tls`](crate::conninfo::ConnSpec::make_tls)
    /// and reports whether the session is encrypted, or the error chain.
    async fn connect(conninfo: &str) -> Result<bool, String> {
        let spec = resolve_with_env(conninfo, &|_| None).map_err(|e| e.to_string())?;
        let tls = spec.make_tls().map_err(|e| e.to_string())?;
        let (client, connection) = spec.config.connect(tls).await.map_err(|e| {
            let mut msg = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        })?;
        let task = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        drop(client);
        let _ = task.await;
        Ok(row.get(0))
    }

    #[tokio::test]
    async fn plain_server_prefer_falls_back_and_require_fails() {
        let pg = PgCluster::start();

        let encrypted = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=prefer")).await.unwrap();
        assert!(!encrypted);

        let err = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=require")).await.unwrap_err();
        assert!(err.contains("server does not support TLS"), "{err}");

        let err = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=verify-full")).await.unwrap_err();
        assert!(err.contains("server does not support TLS"), "{err}");

        let encrypted = connect(&conninfo(&pg, "host=127.0.0.1 sslmode=disable")).await.unwrap();
        assert!(!encrypted);

        // Unix sockets never use TLS (libpq), even with sslmode=require, and
        // the empty server name tokio-postgres passes for them is no error.
        let socket = format!("host={} sslmode=require", pg.socket_dir().display());
        assert!(!connect(&conninfo(&pg, &socket)).await.unwrap());
    }

    #[tokio::test]
    async fn tls_server_modes() {
        let certs = certs();
        let pg = PgCluster::start_with(ClusterOptions::default().with_tls(&certs));
        let ca = certs.ca_cert.display().to_string();
        let other = certs.other_ca_cert.display().to_string();
        let ok = |s: Result<bool, String>, what: &str| {
            assert_eq!(s.as_ref().map_err(String::as_str), Ok(&true), "{what}");
        };

        ok(connect(&conninfo(&pg, "host=127.0.0.1 sslmode=prefer")).await, "prefer");
        ok(connect(&conninfo(&pg, "host=127.0.0.1 sslmode=require")).await, "require");
        ok(
            connect(&conninfo(
                &pg,
                &format!("host=localhost sslmode=verify-full sslrootcert={ca}"),
            ))
            .await,
            "verify-full by name",
        );
        ok(
            connect(&conninfo(
                &pg,
                &format!("host=127.0.0.1 sslmode=verify-full sslrootcert={ca}"),
            ))
            .await,
            "verify-full by IP",
        );

        // The certificate does not name `wrong.invalid`: only verify-full cares.
        let wrong = |mode: &str, root: &str| {
            conninfo(
                &pg,
                &format!("host=wrong.invalid hostaddr=127.0.0.1 sslmode={mode} sslrootcert={root}"),
            )
        };
        ok(connect(&wrong("verify-ca", &ca)).await, "verify-ca, other name");
        ok(connect(&wrong("require", &ca)).await, "require with root, other name");
        let err = connect(&wrong("verify-full", &ca)).await.unwrap_err();
        assert!(err.contains("error performing TLS handshake"), "{err}");
        assert!(err.to_lowercase().contains("not valid for name"), "{err}");

        // A root that did not sign the server certificate fails every
        // verifying mode, including require (libpq's root.crt rule).
        for mode in ["verify-ca", "verify-full", "require"] {
            let s = conninfo(&pg, &format!("host=localhost sslmode={mode} sslrootcert={other}"));
            let err = connect(&s).await.unwrap_err();
            assert!(err.contains("UnknownIssuer"), "{mode}: {err}");
        }

        // verify-full without a root file uses the public roots, which do
        // not know the test CA.
        let err = connect(&conninfo(&pg, "host=localhost sslmode=verify-full")).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");

        // A hand-made connection over a plain TcpStream (as the replication
        // connection does) with `connect_raw`.
        let mut make =
            make_tls_connect(client_config(TlsMode::VerifyFull, Some(&certs.ca_cert)).unwrap());
        let connector =
            MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(&mut make, "localhost")
                .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", pg.port())).await.unwrap();
        let mut config: tokio_postgres::Config = "user=postgres dbname=postgres".parse().unwrap();
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, connection) = config.connect_raw(tcp, connector).await.unwrap();
        let task = tokio::spawn(connection);
        let row = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0));
        drop(client);
        let _ = task.await;

        // sslmode=disable still connects in the clear.
        assert!(!connect(&conninfo(&pg, "host=127.0.0.1 sslmode=disable")).await.unwrap());
    }
}
