//! Runs the benchmark binary against librdkafka's in-process mock cluster
//! (no broker needed) and checks that every case reports a ratio and a
//! paired ratio, against raw rdkafka and, where the case has them, against
//! rskafka and the non-idempotent twitch writer.

use std::process::Command;
use std::time::Instant;

#[test]
fn quick_mock_run_reports_a_ratio_for_every_case() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_twitch-bench"))
        .args(["--quick", "--target", "mock"])
        .env_remove("KAFKA_BROKERS")
        .output()
        .expect("the benchmark binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);

    let expected = [
        "seed",
        "seed-async",
        "keyed",
        "large",
        "group-read",
        "group-read-owned",
        "group-read-each",
        "partition-read",
        "partition-read-owned",
        "json",
        "bincode",
        "bincode-headers",
        "latency",
        "latency-fetch10",
    ];
    for case in expected {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(case) && l.starts_with("ratio "))
            .unwrap_or_else(|| panic!("no `ratio {case} ...` line in:\n{stdout}"));
        let value: f64 = line
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("ratio line without a number: {line}"));
        assert!(value.is_finite() && value > 0.0, "bad ratio in `{line}`");
    }
    let ratio_lines = stdout.lines().filter(|l| l.starts_with("ratio ")).count();
    assert_eq!(ratio_lines, expected.len(), "one ratio line per case:\n{stdout}");
    // One round: each paired median is that round's ratio, with no interval.
    let paired: Vec<&str> = stdout.lines().filter(|l| l.starts_with("paired ")).collect();
    assert_eq!(paired.len(), expected.len(), "one paired line per case:\n{stdout}");
    for line in paired {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            fields.len() == 3 && fields[2].parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0),
            "bad paired line `{line}`"
        );
    }
    // The peer and the non-idempotent writer: writes have both, reads
    // rskafka alone, typed and latency cases neither.
    let writes = ["seed", "seed-async", "keyed", "large"];
    let reads = ["group-read", "group-read-owned", "group-read-each", "partition-read", "partition-read-owned"];
    let cases_with = |prefix: &str| -> Vec<&str> {
        stdout.lines().filter(|l| l.starts_with(&format!("{prefix} "))).filter_map(|l| l.split_whitespace().nth(1)).collect()
    };
    let peer: Vec<&str> = writes.iter().chain(&reads).copied().collect();
    assert_eq!(cases_with("ratio-rskafka"), peer, "{stdout}");
    assert_eq!(cases_with("paired-rskafka"), peer, "{stdout}");
    assert_eq!(cases_with("ratio-twitch-noidem"), writes, "{stdout}");
    assert!(stdout.contains("| case | side |"), "no table in:\n{stdout}");
    eprintln!("smoke run took {:?}", started.elapsed());
}
