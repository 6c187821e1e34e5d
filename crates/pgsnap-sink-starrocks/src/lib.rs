//! pgsnap-sink-starrocks (being assembled).
