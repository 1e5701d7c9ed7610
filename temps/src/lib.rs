//! Shared pieces of the temperature demo (`temp_gen`, `average_temp` and the
//! `scenarios` runner):
//!
//! * [`Reading`]: one temperature reading as it travels through Kafka (plain
//!   JSON).
//! * [`RunningMean`] and [`Averages`]: incremental averages in O(1) memory,
//!   overall and per sensor.
//! * [`ProducerSummary`] and [`ConsumerSummary`]: the one last line each app
//!   prints on stdout, written with [`Display`](std::fmt::Display) and read
//!   back with [`FromStr`](std::str::FromStr), so the apps and the runner
//!   cannot disagree on the format.
//! * [`StageOutput`]: what `average_stage` writes per sensor and transaction,
//!   with the input readings it [`Covers`].
//! * `signals` (feature `signals`): Ctrl-C and SIGTERM on Tokio.
//!
//! ```
//! use temps::{Averages, ConsumerSummary, Reading};
//!
//! let mut averages = Averages::default();
//! for (seq, celsius) in [21.0, 22.0, 23.5].into_iter().enumerate() {
//!     let r = Reading { sensor: "sensor-001".into(), seq: seq as u64, celsius, timestamp: 0 };
//!     averages.add(&r.sensor, r.celsius);
//! }
//! assert_eq!(averages.overall().mean(), Some(22.166666666666668));
//!
//! let line = ConsumerSummary { consumed: 3, average: averages.overall().mean(), partitions: [0, 2].into() };
//! assert_eq!(line.to_string(), "consumed 3 readings, average 22.166667, partitions 0,2");
//! assert_eq!(line.to_string().parse::<ConsumerSummary>().unwrap().consumed, 3);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod mean;
mod reading;
mod stage_output;
mod summary;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "signals")]
pub mod signals;

pub use mean::{Averages, RunningMean};
pub use reading::Reading;
pub use stage_output::{Covers, Span, StageOutput};
pub use summary::{ConsumerSummary, ParseSummaryError, ProducerSummary};

/// What `average_temp` logs (to stderr, at `info`) each time the group
/// assigns it partitions. The `scenarios` runner waits for it before it
/// starts producing into a shared group.
pub const ASSIGNED_LOG_MESSAGE: &str = "assigned partitions";
