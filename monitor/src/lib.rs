//! What the temperature apps show while they run: a Prometheus metrics
//! endpoint ([`metrics`]) for `temp_gen` and `average_temp`, and
//! `average_temp`'s live page ([`page`]) of the averages per sensor and the
//! lag per partition, updating by itself over server-sent events.
//!
//! The page's charts are SVG polylines drawn in Rust ([`svg`]) and pushed
//! whole over the event stream, so nothing comes from the internet at run
//! time and `cargo build` needs no JavaScript toolchain: the page's only
//! script is the few lines that swap the new drawing in.
//!
//! ```no_run
//! use monitor::metrics::{ConsumerMetrics, Metrics};
//! use monitor::page::LivePage;
//!
//! # async fn demo() -> Result<(), monitor::MonitorError> {
//! let mut metrics = Metrics::default();
//! let consumer = ConsumerMetrics::register(&mut metrics);
//! let page = LivePage::new("temperatures");
//! let addr = monitor::serve("127.0.0.1:9100", metrics.router().merge(page.router())).await?;
//! println!("metrics on http://{addr}/metrics, the page on http://{addr}/");
//! consumer.consumed.inc();
//! page.reading("sensor-001", 21.5, 1, 21.5, 1);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod metrics;
pub mod page;
pub mod svg;

use std::net::SocketAddr;

use axum::Router;
use tracing::{error, info};

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The address did not parse or could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Serves `router` on `addr` (`host:port`; port 0 picks a free one) in a
/// task of its own, and returns the address bound. The server runs until
/// the process exits.
pub async fn serve(addr: &str, router: Router) -> Result<SocketAddr, MonitorError> {
    let bind_error = |source| MonitorError::Bind { addr: addr.to_owned(), source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    info!(addr = %bound, "serving");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok(bound)
}
