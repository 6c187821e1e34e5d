//! pgsnap-kafka (being assembled).
