//! Drops a permanent replication slot (and optionally its publication) once nothing needs it.
//!
//! ```text
//! cargo run --example drop_slot -- --source "host=... dbname=..." --slot pgsnap_shop [--publication pgsnap_shop]
//! ```
//!
//! Exit codes follow the examples' contract: 0 done, 2 usage error, 3 connection error or the
//! slot is still in use by a consumer.

use clap::Parser;
use pgsnap_examples::*;

/// Drop a pgsnap replication slot and its publication.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// libpq connection string or postgresql:// URL (PG* variables and ~/.pgpass apply).
    #[arg(long, default_value = "")]
    source: String,
    /// The slot to drop (nothing happens if it does not exist).
    #[arg(long)]
    slot: String,
    /// A publication to drop as well.
    #[arg(long)]
    publication: Option<String>,
    /// Print `{"dropped": {"slot": ..., "publication": ...}}` on stdout.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() {
    init_logging();
    let args = Args::parse();
    if let Err(e) =
        pgsnap_source::drop_slot(&args.source, &args.slot, args.publication.as_deref()).await
    {
        die(source_exit_code(&e), pgsnap_core::error_chain(&e));
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"dropped": {"slot": args.slot, "publication": args.publication}})
        );
    } else {
        eprintln!(
            "dropped slot {:?}{}",
            args.slot,
            args.publication
                .as_ref()
                .map(|p| format!(" and publication {p:?}"))
                .unwrap_or_default()
        );
    }
}
