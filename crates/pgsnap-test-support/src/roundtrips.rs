//! A TCP proxy in front of a PostgreSQL server that counts the client's round trips.
//!
//! Each frontend message that makes the client wait for the server is counted: a simple
//! `Query` (`Q`, which may hold several statements) and a `Sync` (`S`) that ends an
//! extended-protocol exchange such as tokio-postgres' prepare or execute. A `Sync` after
//! nothing but `Close` is not counted: tokio-postgres sends those when a prepared statement
//! is dropped, in the background. Tests use it to show that a
//! job's catalog work does not grow with the number of tables.
//!
//! ```no_run
//! # async fn demo() {
//! let cluster = pgsnap_test_support::shared_cluster();
//! let proxy = pgsnap_test_support::roundtrips::RoundTripProxy::start(cluster.port()).await;
//! let conninfo = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", proxy.port());
//! let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.unwrap();
//! tokio::spawn(conn);
//! client.simple_query("SELECT 1").await.unwrap();
//! assert_eq!(proxy.round_trips(), 1);
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy: `127.0.0.1:<port()>` forwards to the server; stops when dropped.
#[derive(Debug)]
pub struct RoundTripProxy {
    port: u16,
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundTripProxy {
    /// Listens on a free port of `127.0.0.1` and forwards every connection to
    /// `127.0.0.1:server_port`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(server_port: u16) -> RoundTripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await {
                        let _ = pipe(client, server, counter).await;
                    }
                });
            }
        });
        RoundTripProxy { port, count, task }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round trips counted so far over all connections.
    pub fn round_trips(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Sets the count back to zero.
    pub fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, count: Arc<AtomicU64>) -> std::io::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let mut scanner = Scanner::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        count.fetch_add(scanner.feed(&buf[..n]), Ordering::SeqCst);
        sw.write_all(&buf[..n]).await?;
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
    Ok(())
}

/// Splits the client's byte stream into messages and counts `Q` and `S`.
#[derive(Debug, Default)]
struct Scanner {
    pending: Vec<u8>,
    started: bool,
    /// Whether the extended-protocol exchange in progress asks for an answer.
    waits: bool,
}

impl Scanner {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut counted = 0;
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if !self.started {
                // Startup phase: length-prefixed messages without a type byte (an SSL or
                // GSS encryption request first, then the startup message).
                if rest.len() < 8 {
                    break;
                }
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let code = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                if rest.len() < len {
                    break;
                }
                at += len;
                if code != 80_877_103 && code != 80_877_104 {
                    self.started = true;
                }
                continue;
            }
            if rest.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            if rest.len() < 1 + len {
                break;
            }
            match rest[0] {
                b'Q' => counted += 1,
                // A Sync ends an exchange the client waits for, unless all it ended was
                // `Close` (tokio-postgres closes a dropped statement in the background,
                // without waiting: no round trip, and sent at no fixed time).
                b'S' if std::mem::take(&mut self.waits) => counted += 1,
                b'S' | b'C' | b'H' | b'X' => {}
                _ => self.waits = true,
            }
            at += 1 + len;
        }
        self.pending.drain(..at);
        counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_queries_and_syncs_across_reads() {
        let mut s = Scanner::default();
        let mut startup = 16u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196_608u32.to_be_bytes());
        startup.extend_from_slice(b"user\0\0\0\0");
        let mut q = vec![b'Q'];
        q.extend_from_slice(&13u32.to_be_bytes());
        q.extend_from_slice(b"SELECT 1\0");
        let sync = [b'S', 0, 0, 0, 4];
        let parse = [b'P', 0, 0, 0, 8, 0, b'x', 0, 0];
        let close = [b'C', 0, 0, 0, 7, b'S', b's', 0];
        let all: Vec<u8> =
            [startup, q.clone(), parse.to_vec(), sync.to_vec(), close.to_vec(), sync.to_vec(), q]
                .concat();
        // Fed one byte at a time: the two queries and the parse, not the close.
        let n: u64 = all.iter().map(|b| s.feed(std::slice::from_ref(b))).sum();
        assert_eq!(n, 3);
    }
}
