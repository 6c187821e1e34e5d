//! Throwaway TLS certificates made with `openssl`, for servers started with
//! [`ClusterOptions::with_tls`](crate::ClusterOptions::with_tls).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to tell someone whose machine lacks `openssl`.
const OPENSSL_HINT: &str = "install it with: apt-get install -y openssl";
/// Validity of every certificate, in days.
const DAYS: &str = "2";
/// `openssl req` arguments for a new unencrypted P-256 key.
const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A throwaway CA, a server certificate signed by it and an unrelated second
/// CA, all PEM files in a temp dir that is removed on drop.
///
/// The server certificate's subject alternative names are the names given to
/// [`generate`](Self::generate): IP addresses as `IP:` entries, everything
/// else as `DNS:` entries. Its key is unencrypted (PKCS#8). A client that
/// trusts [`ca_cert`](Self::ca_cert) accepts the server under those names
/// only, so connecting to the same address under another name (say
/// `host=wrong.invalid hostaddr=127.0.0.1`) tests host name verification.
///
/// # Example
///
/// ```
/// use pgsnap_test_support::{ClusterOptions, PgCluster, TestCerts};
///
/// let certs = TestCerts::generate(&["127.0.0.1", "localhost"]);
/// let cluster = PgCluster::start_with(ClusterOptions::default().with_tls(&certs));
/// assert_eq!(cluster.psql("postgres", "SHOW ssl"), "on");
/// // Clients verify the server with `sslrootcert=<certs.ca_cert>`.
/// assert!(certs.ca_cert.exists());
/// ```
#[derive(Debug)]
pub struct TestCerts {
    /// The temp dir holding every file (also `*.key`, `*.csr`, `*.srl` and
    /// `ext.cnf`); removed when this value is dropped.
    pub dir: tempfile::TempDir,
    /// The CA certificate that signed [`server_cert`](Self::server_cert):
    /// the `sslrootcert` of verifying clients.
    pub ca_cert: PathBuf,
    /// A second, self-signed CA certificate that signed nothing: a root under
    /// which the server certificate fails verification (unknown issuer).
    pub other_ca_cert: PathBuf,
    /// The server certificate (`CN` = the first name, SAN = all names).
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
}

impl TestCerts {
    /// Makes a CA, a server certificate for `names` (e.g.
    /// `["127.0.0.1", "localhost"]`) signed by it, and an unrelated CA, in a
    /// new temp dir.
    ///
    /// # Panics
    ///
    /// If `names` is empty, if `openssl` is missing (the message says
    /// `apt-get install -y openssl`) or if one of its commands fails (the
    /// message holds its stderr).
    pub fn generate(names: &[&str]) -> TestCerts {
        assert!(!names.is_empty(), "TestCerts::generate needs at least one name");
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-certs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for certificates: {e}"));
        let path = dir.path();
        for (ca, subject) in [("ca", "/CN=pgsnap-test-ca"), ("other-ca", "/CN=other-ca")] {
            let key = format!("{ca}.key");
            let crt = format!("{ca}.crt");
            let mut args = vec!["req", "-x509", "-new"];
            args.extend(EC_KEY);
            args.extend(["-keyout", &key, "-out", &crt, "-days", DAYS, "-subj", subject]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(path, &args);
        }
        let subject = format!("/CN={}", names[0]);
        let mut args = vec!["req", "-new"];
        args.extend(EC_KEY);
        args.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", &subject]);
        openssl(path, &args);
        let ext = path.join("ext.cnf");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\n\
                 basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n",
                subject_alt_names(names)
            ),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", ext.display()));
        let mut args =
            vec!["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"];
        args.extend([
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            DAYS,
            "-extfile",
            "ext.cnf",
        ]);
        openssl(path, &args);
        TestCerts {
            ca_cert: path.join("ca.crt"),
            other_ca_cert: path.join("other-ca.crt"),
            server_cert: path.join("server.crt"),
            server_key: path.join("server.key"),
            dir,
        }
    }
}

/// The `subjectAltName` value for `names`: `IP:` for addresses, `DNS:` else.
fn subject_alt_names(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(_) => format!("IP:{name}"),
            Err(_) => format!("DNS:{name}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); {OPENSSL_HINT}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_ip_or_dns_entries() {
        assert_eq!(
            subject_alt_names(&["127.0.0.1", "localhost", "::1"]),
            "IP:127.0.0.1,DNS:localhost,IP:::1"
        );
    }

    #[test]
    fn generate_writes_pem_files_and_cleans_up() {
        let certs = TestCerts::generate(&["127.0.0.1", "db.example"]);
        for file in [&certs.ca_cert, &certs.other_ca_cert, &certs.server_cert] {
            let pem = std::fs::read_to_string(file).unwrap();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", file.display());
        }
        let key = std::fs::read_to_string(&certs.server_key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&certs.server_cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("IP Address:127.0.0.1") && text.contains("DNS:db.example"), "{text}");
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&certs.ca_cert)
            .arg(&certs.server_cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dir = certs.dir.path().to_path_buf();
        drop(certs);
        assert!(!dir.exists());
    }
}
