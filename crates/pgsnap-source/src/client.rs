//! tokio-postgres sessions (the leader, catalog reads, checks) opened from a resolved
//! [`ConnSpec`].

use crate::conninfo::ConnSpec;
use crate::error::{Error, Result};

/// Opens a normal connection (TLS per the spec) and drives it on a background task.
pub(crate) async fn connect(spec: &ConnSpec) -> Result<tokio_postgres::Client> {
    let tls = spec.make_tls()?;
    let (client, conn) = spec
        .config
        .connect(tls)
        .await
        .map_err(|e| Error::Connect { target: target(&spec.config), source: Box::new(e) })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
    Ok(client)
}

/// The server a configuration points at, without credentials, for error messages.
pub(crate) fn target(c: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "{} port {:?} database {:?} user {:?}",
        hosts.join(","),
        c.get_ports(),
        c.get_dbname().unwrap_or(""),
        c.get_user().unwrap_or("")
    )
}
