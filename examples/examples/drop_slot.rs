//! Drops a permanent replication slot (and optionally its publication) once nothing needs it.
//!
//! ```text
//! cargo run --example drop_slot -- --source "host=... dbname=..." --slot pgsnap_shop [--publication pgsnap_shop]
//! ```
//!
//! The same as `pgsnap drop-slot`. In a service: `pgsnap::drop_slot(connection, slot,
//! publication).await`. Exit codes: 0 done, 2 usage error, 3 connection error or the slot is
//! still in use by a consumer.

use clap::Parser;
use pgsnap_cli::args::DropSlotCmd;
use pgsnap_cli::output;

#[tokio::main]
async fn main() {
    output::init_logging();
    let args = DropSlotCmd::parse();
    let dropped =
        pgsnap::drop_slot(args.source.connection(), &args.slot, args.publication.as_deref()).await;
    std::process::exit(output::drop_slot(&args, dropped));
}
