//! `--sweep`: what producer settings twitch should default to. Runs twitch's
//! keyed writer (throughput) and the latency case with one setting changed
//! at a time from twitch's defaults.

use anyhow::Result;

use crate::cases::{self, Case, Kind, Side, Tuning};
use crate::stats::median;
use crate::target::Target;

/// One setting changed from twitch's defaults (`None`: the defaults).
const SETTINGS: &[Option<(&str, &str)>] = &[
    None,
    Some(("linger.ms", "0")),
    Some(("linger.ms", "1")),
    Some(("linger.ms", "20")),
    Some(("linger.ms", "100")),
    Some(("batch.size", "16384")),
    Some(("batch.size", "131072")),
    Some(("batch.num.messages", "100000")),
    Some(("compression.type", "lz4")),
    Some(("compression.type", "snappy")),
    Some(("compression.type", "gzip")),
    Some(("acks", "1")),
];

pub async fn run(target: &Target, quick: bool, rounds: usize) -> Result<()> {
    let all = cases::all(quick);
    let pick = |name: &str| all.iter().find(|c| c.name == name).cloned();
    let (Some(keyed), Some(large), Some(latency)) = (pick("keyed"), pick("large"), pick("latency-fetch10")) else {
        anyhow::bail!("sweep cases missing");
    };
    let latency = Case { count: latency.count / 2, ..latency };
    println!("\n## producer settings sweep on {} (twitch writers; medians of {rounds} rounds)\n", target.name());
    println!("| setting | keyed 320 B rec/s | large 10 KB MB/s | latency p50 ms | latency p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for setting in SETTINGS {
        let mut tuning = Tuning::default();
        if let Some((k, v)) = setting {
            tuning.producer.push(((*k).to_owned(), (*v).to_owned()));
            if *k == "acks" {
                // acks=1 needs idempotence off.
                tuning.producer.push(("enable.idempotence".to_owned(), "false".to_owned()));
            }
        }
        let label = setting.map_or_else(|| "twitch defaults".to_owned(), |(k, v)| format!("{k}={v}"));
        let mut rps = Vec::new();
        let mut mbps = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for _ in 0..rounds {
            rps.push(cases::run(target, &keyed, Side::Twitch, &tuning).await?.records_per_sec());
            mbps.push(cases::run(target, &large, Side::Twitch, &tuning).await?.mb_per_sec());
            if matches!(latency.kind, Kind::Latency { .. }) {
                if let Some(l) = cases::run(target, &latency, Side::Twitch, &tuning).await?.latency {
                    p50.push(l.p50_us / 1000.0);
                    p99.push(l.p99_us / 1000.0);
                }
            }
        }
        println!("| {label} | {:.0} | {:.1} | {:.2} | {:.2} |", median(&rps), median(&mbps), median(&p50), median(&p99));
        eprintln!("   sweep {label}: {:.0} rec/s, {:.1} MB/s, p99 {:.2} ms", median(&rps), median(&mbps), median(&p99));
    }
    Ok(())
}
