//! Runs the StarRocks **test double** as a process, for end-to-end benchmarks and manual
//! tries of `migrate_to_starrocks` (it is not StarRocks: see `pgsnap_test_support::starrocks`).
//!
//! ```text
//! pgsnap-starrocks-double [--user U] [--password P] [--database DB]...
//! ```
//!
//! Prints one JSON line on stdout, `{"fe":"http://127.0.0.1:…","be":"…","mysql":"127.0.0.1:…"}`,
//! then serves until killed.

use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut user, mut password, mut databases) = ("root".to_owned(), String::new(), Vec::new());
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--user" => user = value(),
            "--password" => password = value(),
            "--database" => databases.push(value()),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let d =
            StarRocksDouble::start(StarRocksOptions::default().with_user(&user, &password)).await;
        for db in &databases {
            d.create_database(db);
        }
        println!(
            "{{\"fe\":\"{}\",\"be\":\"{}\",\"mysql\":\"{}\"}}",
            d.fe_url(),
            d.be_url(),
            d.mysql_addr()
        );
        std::future::pending::<()>().await;
    });
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "error: {msg}\nusage: pgsnap-starrocks-double [--user U] [--password P] [--database DB]..."
    );
    std::process::exit(2)
}
