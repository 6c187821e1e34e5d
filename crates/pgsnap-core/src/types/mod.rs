//! Shared value types.

pub mod chunk;
pub mod lsn;
pub mod snapshot;
pub mod table;
