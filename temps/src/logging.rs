//! Logging for the apps: to stderr (stdout carries their output), filtered
//! by `RUST_LOG` (default `info`), in colour only on a terminal.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the apps' log subscriber.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
