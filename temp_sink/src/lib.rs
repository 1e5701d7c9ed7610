//! `temp_sink`: temperature readings from Kafka into PostgreSQL, exactly
//! once, with the running averages per sensor (and overall, as a view).
//!
//! * [`Store`]: the database. It creates its schema on first start
//!   (`migrations/`), resumes each partition where the database says it was
//!   left ([`Store::claim`]) and writes a batch of readings, the averages they
//!   change and the offsets they came from in one transaction
//!   ([`Store::write`]).
//! * [`batch`]: which records of a batch are written, already in the
//!   database, or no longer this member's to write.
//! * [`pipeline`]: the group reader's rebalance listener, the read loop and
//!   the batching writer with its retries.
//!
//! Kafka's committed offsets are only a hint for lag tools: a record is
//! acked (and so committed) after its transaction commits, and an assigned
//! partition starts at the offset stored in the database.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod batch;
mod migrate;
pub mod pipeline;
mod store;

use std::error::Error as StdError;

pub use batch::{Claim, Row, Verdict};
pub use store::{Report, SensorAverage, Store, Written};

/// Why the sink failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The database URL does not parse.
    #[error("invalid database URL: {}", chain(.0))]
    Url(#[source] tokio_postgres::Error),

    /// The schema name is not a plain lowercase identifier.
    #[error("`{0}` is not a schema name: lowercase letters, digits and `_`, at most 63, not starting with a digit")]
    Schema(String),

    /// No connection to the database could be made.
    #[error("cannot reach the database at {target}: {cause}")]
    Connect {
        /// Host, port and database name (no password).
        target: String,
        /// Why, in one line.
        cause: String,
    },

    /// A statement failed.
    #[error("{what}: {}", chain(.source))]
    Db {
        /// What the statement was for.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// A migration failed.
    #[error("migration {version} ({name}) failed: {}", chain(.source))]
    Migration {
        /// Its number.
        version: i32,
        /// Its file name.
        name: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// Kafka failed.
    #[error(transparent)]
    Kafka(#[from] twitch::Error),
}

/// An error and its causes on one line: `a: b: c` (the driver's own message
/// is often just `db error`, with the server's message in its source).
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_read_as_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = SinkError::Connect { target: "127.0.0.1:1/x".into(), cause: chain(&io) };
        assert_eq!(e.to_string(), "cannot reach the database at 127.0.0.1:1/x: refused");
        assert_eq!(SinkError::Schema("A".into()).to_string().lines().count(), 1);
    }
}
