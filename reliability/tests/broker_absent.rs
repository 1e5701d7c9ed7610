//! No broker: the apps give one clear line on stderr, naming the broker
//! address, and exit non-zero within their `--broker-timeout`; nothing
//! hangs. Two kinds of absence: a port nothing listens on (connections
//! refused) and a port that accepts connections but never answers (a hung
//! broker, or a firewall that swallows packets).
//!
//! `KafkaCluster::wait_for_brokers` itself is covered in
//! `twitch/tests/warden.rs`; this needs no broker and no `KAFKA_BROKERS`.

use std::io::Read as _;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use reliability::binaries;

/// The apps' `--broker-timeout` here.
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed beyond it: process start, the last attempt, client teardown.
const SLACK: Duration = Duration::from_secs(8);

/// Runs `program args` with `--brokers address`, and checks it fails in
/// time with exactly one line on stderr naming `address`.
async fn fails_clearly(name: &str, program: &std::path::Path, args: &[&str], address: &str) -> Result<()> {
    let started = Instant::now();
    let timeout = humantime_secs(BROKER_TIMEOUT);
    let run = tokio::process::Command::new(program)
        .args(args)
        .args(["--brokers", address, "--broker-timeout", &timeout])
        // What a user sees: default logging.
        .env_remove("RUST_LOG")
        .env_remove("KAFKA_BROKERS")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(BROKER_TIMEOUT + SLACK, run)
        .await
        .with_context(|| {
            format!("{name} still ran {:?} after start with no broker at {address}", BROKER_TIMEOUT + SLACK)
        })?
        .with_context(|| format!("running {name}"))?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}, no broker at {address}: {} after {elapsed:.1?}: {}", out.status, stderr.trim_end());
    ensure!(out.status.code() == Some(1), "{name} exited with {} (want 1): {stderr}", out.status);
    ensure!(out.stdout.is_empty(), "{name} printed on stdout: {}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    ensure!(lines.len() == 1, "{name} printed {} lines on stderr, want one:\n{stderr}", lines.len());
    ensure!(lines[0].starts_with(&format!("{name}: error: ")), "not an error line: {}", lines[0]);
    ensure!(lines[0].contains(address), "the error does not name {address}: {}", lines[0]);
    ensure!(elapsed >= BROKER_TIMEOUT, "{name} gave up after {elapsed:?}, before its broker timeout");
    Ok(())
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

async fn both_apps_fail_clearly(address: &str) -> Result<()> {
    let bins = binaries()?;
    let temp_gen = fails_clearly("temp_gen", &bins.temp_gen, &["--topic", "never-created", "--count", "10"], address);
    let average_temp =
        fails_clearly("average_temp", &bins.average_temp, &["--topic", "never-created", "--group", "g"], address);
    let (a, b) = tokio::join!(temp_gen, average_temp);
    a.and(b)
}

#[tokio::test]
async fn nothing_listening_gives_one_clear_line_and_exit_1() -> Result<()> {
    both_apps_fail_clearly("127.0.0.1:1").await
}

#[tokio::test]
async fn a_broker_that_never_answers_gives_one_clear_line_and_exit_1() -> Result<()> {
    // Accepts connections, reads what comes, never replies.
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a silent port")?;
    let address = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    both_apps_fail_clearly(&address).await
}
