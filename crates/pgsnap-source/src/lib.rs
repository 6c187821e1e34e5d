#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod catalog;
pub mod conninfo;
mod copy;
mod error;
pub mod handoff;
pub mod pattern;
pub mod plan;
pub mod replication;
pub mod session;
mod snapshot;
mod source;
pub mod tls;
mod wire;

pub use error::{Error, Result};
pub use plan::{SplitBy, parse_size};
pub use source::{
    MIN_SERVER_VERSION, PgSource, PgSourceBuilder, SnapshotHealth, check_resume, drop_slot,
};

/// Opens a normal connection (TLS per the spec) and drives it on a background task.
pub(crate) async fn connect(spec: &conninfo::ConnSpec) -> Result<tokio_postgres::Client> {
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

fn target(c: &tokio_postgres::Config) -> String {
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
