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
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The libpq `sslmode`, with libpq's meaning.
///
/// Parsed from the libpq spelling with [`FromStr`]; [`Display`](fmt::Display) gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS if the server supports it, else plain. The certificate is not
    /// verified (unless an `sslrootcert` is given explicitly).
    #[default]
    Prefer,
    /// TLS required. The certificate is not verified, unless a root
    /// certificate file is available: then the chain is verified (as
    /// [`VerifyCa`](Self::VerifyCa)).
    Require,
    /// TLS required, the certificate chain is verified against
    /// `sslrootcert`, the host name is not checked.
    VerifyCa,
    /// TLS required, the chain is verified against `sslrootcert` (or the
    /// bundled Mozilla roots) and the certificate must name the host.
    VerifyFull,
}

impl TlsMode {
    /// The libpq spelling: `disable`, `prefer`, `require`, `verify-ca` or
    /// `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// The tokio-postgres `SslMode` that makes the same negotiation.
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = ParseTlsModeError;

    /// Parses a libpq `sslmode`; `allow` is taken as `prefer`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => TlsMode::Disable,
            // libpq's `allow` tries plain first, then TLS; tokio-postgres
            // cannot, and `prefer` connects to every server `allow` does.
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => return Err(ParseTlsModeError { value: other.to_owned() }),
        })
    }
}

/// A string that is not a libpq `sslmode` (the error of [`TlsMode`]'s [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid sslmode `{value}`; expected disable, allow, prefer, require, verify-ca or \
     verify-full"
)]
pub struct ParseTlsModeError {
    value: String,
}

impl ParseTlsModeError {
    /// The rejected value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

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
    /// The `sslrootcert` file is not well-formed PEM (a section without its end line, bad
    /// base64).
    #[error("sslrootcert file {} is not valid PEM: {source}", path.display())]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: pem::Error,
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
/// use pgsnap_source::tls::{TlsMode, client_config};
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
/// `conninfo::ConnSpec` arranges for `sslmode=disable`):
/// unlike `NoTls`, a `MakeTls` cannot tell tokio-postgres to skip TLS
/// negotiation (that hook is private to tokio-postgres), so with `Prefer`
/// and a server that offers TLS the connection fails with a clear error
/// instead of falling back.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pgsnap_source::tls::{TlsMode, client_config, make_tls_connect};
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
    // Sections other than `CERTIFICATE` (a key, say) are skipped.
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::InvalidPem { path: path.to_owned(), source })?;
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
    use pgsnap_test_support::TestCerts;

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
        let dir = tempfile::tempdir().unwrap();
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

        let unterminated = dir.path().join("unterminated.crt");
        std::fs::write(&unterminated, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = client_config(TlsMode::VerifyFull, Some(&unterminated)).unwrap_err();
        assert!(matches!(err, TlsError::InvalidPem { .. }), "{err}");
        assert!(err.to_string().contains("unterminated.crt"), "{err}");
    }

    #[test]
    fn root_file_with_a_key_and_two_certificates() {
        // Only the CERTIFICATE sections count; other sections are skipped.
        let certs = certs();
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.crt");
        let ca = std::fs::read_to_string(&certs.ca_cert).unwrap();
        let other = std::fs::read_to_string(&certs.other_ca_cert).unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        std::fs::write(&bundle, format!("{key}{ca}\n{other}")).unwrap();
        assert_eq!(load_roots(&bundle).unwrap().len(), 2);
    }

    #[test]
    fn tls_mode_parses_the_libpq_spellings() {
        for m in [
            TlsMode::Disable,
            TlsMode::Prefer,
            TlsMode::Require,
            TlsMode::VerifyCa,
            TlsMode::VerifyFull,
        ] {
            assert_eq!(m.to_string().parse::<TlsMode>().unwrap(), m);
        }
        assert_eq!("allow".parse::<TlsMode>().unwrap(), TlsMode::Prefer);
        assert_eq!(TlsMode::default(), TlsMode::Prefer);
        let err = "sometimes".parse::<TlsMode>().unwrap_err();
        assert_eq!(err.value(), "sometimes");
        assert!(err.to_string().starts_with("invalid sslmode `sometimes`; expected"), "{err}");
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

    fn certs() -> TestCerts {
        TestCerts::generate(&["localhost", "127.0.0.1"])
    }
}
