//! Logging for the apps: to stderr (stdout carries their output), filtered
//! by `RUST_LOG` (default `info`), in colour only on a terminal; and how an
//! app ends: a one-line cause on stderr and a non-zero exit code on error.

use std::fmt::Display;
use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Installs the apps' log subscriber.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The exit code of an app's run: success, or failure after printing
/// `app: error: cause` on stderr.
pub fn exit_code(app: &str, result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{app}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
