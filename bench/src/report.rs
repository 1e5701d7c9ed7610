//! The results table, the limit each number hits, and the ratio lines.

use std::fmt::Write as _;

use crate::cases::{Case, Sample, Side, FLOOR};
use crate::stats::{max, median, median_ci95, min};

/// A paired ratio: the median of the rounds' ratios, and its 95 %
/// confidence interval from six rounds on.
type Paired = (f64, Option<(f64, f64)>);

/// Every round of one case on one target, per side.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub target: &'static str,
    pub case: Case,
    /// The case's sides in [`Case::sides`](crate::cases::Case::sides) order, each with its rounds.
    samples: Vec<(Side, Vec<Sample>)>,
}

/// Medians (and extremes) over the rounds of one side.
#[derive(Debug, Clone, Copy)]
struct Summary {
    rps_median: f64,
    rps_min: f64,
    mbps_median: f64,
    client_cores: Option<f64>,
    broker_cores: Option<f64>,
    other_cores: Option<f64>,
    /// CPU microseconds per record of the client's application threads and
    /// of its librdkafka threads.
    app_us: Option<f64>,
    rdkafka_us: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    p99_min_ms: f64,
    p99_max_ms: f64,
    max_ms: f64,
}

impl CaseResult {
    pub fn new(target: &'static str, case: Case) -> Self {
        let samples = case.sides().into_iter().map(|s| (s, Vec::new())).collect();
        CaseResult { target, case, samples }
    }

    pub fn push(&mut self, side: Side, sample: Sample) {
        if let Some((_, v)) = self.samples.iter_mut().find(|(s, _)| *s == side) {
            v.push(sample);
        }
    }

    /// The rounds of `side` (none when the case has no such side).
    fn of(&self, side: Side) -> &[Sample] {
        self.samples.iter().find(|(s, _)| *s == side).map_or(&[], |(_, v)| v)
    }

    /// The sides twitch is compared with that ran at least once.
    fn others(&self) -> impl Iterator<Item = Side> + '_ {
        self.samples.iter().filter(|(s, v)| *s != Side::Twitch && !v.is_empty()).map(|(s, _)| *s)
    }

    fn summary(samples: &[Sample]) -> Summary {
        let rps: Vec<f64> = samples.iter().map(Sample::records_per_sec).collect();
        let mbps: Vec<f64> = samples.iter().map(Sample::mb_per_sec).collect();
        // The median of a per-sample value, when every sample has one.
        let median_of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let v: Option<Vec<f64>> = samples.iter().map(f).collect();
            v.filter(|v| !v.is_empty()).map(|v| median(&v))
        };
        let cores = |f: &dyn Fn(&Sample) -> Option<f64>| median_of(&|s| Some(f(s)? / s.span.wall.as_secs_f64()));
        let per_record = |f: fn(&crate::stats::CpuPerRecord) -> f64| median_of(&|s| s.cpu_per_record().map(|c| f(&c)));
        let lat = |f: fn(&crate::stats::Latency) -> f64| -> Vec<f64> {
            samples.iter().filter_map(|s| s.latency.as_ref().map(|l| f(l) / 1000.0)).collect()
        };
        let p99 = lat(|l| l.p99_us);
        Summary {
            rps_median: median(&rps),
            rps_min: min(&rps),
            mbps_median: median(&mbps),
            client_cores: cores(&|s| s.span.client_cpu()),
            broker_cores: cores(&|s| s.span.broker_cpu),
            other_cores: cores(&|s| s.span.other_cpu()),
            app_us: per_record(|c| c.app_us),
            rdkafka_us: per_record(|c| c.rdkafka_us),
            p50_ms: median(&lat(|l| l.p50_us)),
            p99_ms: median(&p99),
            p99_min_ms: min(&p99),
            p99_max_ms: max(&p99),
            max_ms: median(&lat(|l| l.max_us)),
        }
    }

    /// twitch/`other` of the median throughput; for latency cases other's
    /// p99 / twitch's p99. Higher is better for twitch either way.
    pub fn ratio(&self, other: Side) -> f64 {
        self.ratio_of(self.of(other), self.of(Side::Twitch))
    }

    /// [`ratio`](Self::ratio) over these samples of each side.
    fn ratio_of(&self, other: &[Sample], twitch: &[Sample]) -> f64 {
        let (o, t) = (Self::summary(other), Self::summary(twitch));
        if self.case.is_latency() {
            o.p99_ms / t.p99_ms
        } else {
            t.rps_median / o.rps_median
        }
    }

    /// The same ratio within each round (the sides ran back to back).
    fn round_ratios(&self, other: Side) -> Vec<f64> {
        self.of(other)
            .iter()
            .zip(self.of(Side::Twitch))
            .map(|(o, t)| self.ratio_of(std::slice::from_ref(o), std::slice::from_ref(t)))
            .collect()
    }

    /// The rounds' own ratios, lowest and highest: how much of a difference
    /// is the machine's.
    fn round_ratio_range(&self, other: Side) -> Option<(f64, f64)> {
        let ratios = self.round_ratios(other);
        (ratios.len() > 1).then(|| (min(&ratios), max(&ratios)))
    }

    /// The median of the rounds' own ratios, and its 95 % confidence
    /// interval from six rounds on. Pairing each round's two sides cancels
    /// the machine's slow drifts, which the ratio of the medians does not.
    fn paired(&self, other: Side) -> Option<Paired> {
        let ratios = self.round_ratios(other);
        (!ratios.is_empty()).then(|| (median(&ratios), median_ci95(&ratios)))
    }

    /// The like-for-like raw side, if it ran, and the paired ratio against
    /// it.
    fn floor(&self) -> Option<(Side, Paired)> {
        let side = self.case.like_for_like();
        Some((side, self.paired(side)?))
    }

    /// The paired cell of `other`'s row: [`paired`](Self::paired).
    fn paired_cell(&self, other: Side) -> String {
        match self.paired(other) {
            Some((m, Some((lo, hi)))) => format!("{m:.2} [{lo:.2}, {hi:.2}]"),
            Some((m, None)) => format!("{m:.2}"),
            None => String::new(),
        }
    }

    /// The ratio cell of `other`'s row: the ratio, and the range of the
    /// rounds' own ratios when there are several rounds.
    fn ratio_cell(&self, other: Side) -> String {
        match self.round_ratio_range(other) {
            Some((lo, hi)) => format!("**{:.2}** ({lo:.2}..{hi:.2})", self.ratio(other)),
            None => format!("**{:.2}**", self.ratio(other)),
        }
    }

    /// The ratio and paired cells of a side's row: empty on twitch's own.
    fn cells(&self, side: Side) -> (String, String) {
        if side == Side::Twitch {
            (String::new(), String::new())
        } else {
            (self.ratio_cell(side), self.paired_cell(side))
        }
    }
}

/// Which resource a row's number is bound by, from CPU use: this process
/// (the client, plus the mock brokers' threads on the mock target) and the
/// broker process.
fn limit(target: &str, s: &Summary, latency: bool, mock_rps: Option<f64>) -> String {
    let c = s.client_cores.unwrap_or(f64::NAN);
    let b = s.broker_cores;
    let other = s.other_cores.unwrap_or(0.0);
    let total = c + b.unwrap_or(0.0) + other;
    let mut cores = match b {
        Some(b) => format!("client {c:.2} + broker {b:.2} cores"),
        None if target == "mock" => format!("client+mock {c:.2} cores"),
        None => format!("client {c:.2} cores, broker ?"),
    };
    if other >= 0.05 {
        let _ = write!(cores, ", other processes {other:.2}");
    }
    if latency {
        let why = if s.p50_ms < 25.0 {
            "timers: linger.ms=5 + produce/fetch round trips"
        } else {
            "broker: holds an empty fetch up to fetch.wait.max.ms (500 ms default)"
        };
        return format!("{why} ({cores})");
    }
    let verdict = if total >= 1.6 && other >= 0.3 {
        "machine: both cores busy, partly with other processes"
    } else if total >= 1.6 {
        "machine: both cores busy"
    } else if b.is_some_and(|b| b >= 0.85 && b > c) {
        "broker: one core busy"
    } else if target != "mock" && mock_rps.is_some_and(|m| s.rps_median < 0.5 * m) && b.is_none() {
        "broker: far below the mock"
    } else if c >= 0.85 {
        "client: CPU"
    } else {
        "waits: round trips / timers"
    };
    format!("{verdict} ({cores})")
}

pub struct Report {
    machine: String,
    /// How the rskafka side ran (its batch size).
    rskafka: String,
    rounds: usize,
    quick: bool,
    results: Vec<CaseResult>,
}

impl Report {
    pub fn new(machine: String, rskafka: String, rounds: usize, quick: bool) -> Self {
        Report { machine, rskafka, rounds, quick, results: Vec::new() }
    }

    pub fn push(&mut self, r: CaseResult) {
        self.results.push(r);
    }

    fn mock_rps(&self, case: &str, side: Side) -> Option<f64> {
        self.results
            .iter()
            .find(|r| r.target == "mock" && r.case.name == case && !r.of(side).is_empty())
            .map(|r| CaseResult::summary(r.of(side)).rps_median)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n# twitch vs raw rdkafka and rskafka");
        let _ = writeln!(
            out,
            "setup: {}; {} round(s) per side, the sides taking turns to go first, fresh topic each{}",
            self.machine,
            self.rounds,
            if self.quick { "; --quick (tiny counts: numbers are not meaningful)" } else { "" }
        );
        let _ = writeln!(
            out,
            "raw and twitch: identical client settings, twitch::writer::PRODUCER_DEFAULTS / twitch::reader::CONSUMER_DEFAULTS; \
             twitch-noidem: the same with enable.idempotence=false; rskafka: {}",
            self.rskafka
        );
        let mut targets: Vec<&str> = self.results.iter().map(|r| r.target).collect();
        targets.dedup();
        for target in &targets {
            let about = if *target == "mock" {
                "librdkafka's in-process mock cluster (1 broker): no network, no disk, so this shows the clients' own cost; the mock brokers' threads count as client CPU"
            } else {
                "the broker at --brokers"
            };
            let _ = writeln!(out, "\n## target {target}: {about}\n");
            self.render_throughput(&mut out, target);
            self.render_latency(&mut out, target);
        }
        self.render_notes(&mut out, &targets);
        let primary = if targets.contains(&"broker") { "broker" } else { "mock" };
        self.render_floor(&mut out, primary);
        let _ = writeln!(
            out,
            "\n# ratios (target {primary}): twitch/raw, twitch/rskafka, twitch/twitch-noidem; higher is better for twitch; \
             latency: other_p99/twitch_p99"
        );
        // `ratio <case> <twitch/raw>` (with a `mock-` prefix off the primary
        // target), then `ratio-<side> <case> <twitch/side>` for the others.
        for r in self.results.iter().filter(|r| r.target != primary) {
            let _ = writeln!(out, "{}-ratio {} {:.3}", r.target, r.case.name, r.ratio(Side::Raw));
        }
        for r in self.results.iter().filter(|r| r.target == primary) {
            for other in r.others() {
                let _ = writeln!(out, "{} {} {:.3}", line_name("ratio", other), r.case.name, r.ratio(other));
            }
        }
        // The paired medians, with their 95 % interval where there are
        // rounds enough: `paired <case> <median> [<low> <high>]`, likewise
        // `paired-<side>`.
        for r in self.results.iter().filter(|r| r.target == primary) {
            for other in r.others() {
                let name = line_name("paired", other);
                match r.paired(other) {
                    Some((m, Some((lo, hi)))) => _ = writeln!(out, "{name} {} {m:.3} {lo:.3} {hi:.3}", r.case.name),
                    Some((m, None)) => _ = writeln!(out, "{name} {} {m:.3}", r.case.name),
                    None => {}
                }
            }
        }
        // `floor <case> <median> <like-for-like side>`: the paired ratio the
        // floor applies to.
        for r in self.results.iter().filter(|r| r.target == primary) {
            if let Some((side, (m, _))) = r.floor() {
                let _ = writeln!(out, "floor {} {m:.3} {}", r.case.name, side.name());
            }
        }
        out
    }

    /// Each case's paired ratio against its like-for-like raw side, and
    /// whether it holds the floor.
    fn render_floor(&self, out: &mut String, target: &str) {
        let _ = writeln!(out, "\n## the floor (target {target}): twitch over its like-for-like raw side, paired, at least {FLOOR}\n");
        for r in self.results.iter().filter(|r| r.target == target) {
            let Some((side, (m, ci))) = r.floor() else { continue };
            let ci = ci.map(|(lo, hi)| format!(" [{lo:.2}, {hi:.2}]")).unwrap_or_default();
            let verdict = if m >= FLOOR { "holds" } else { "BELOW" };
            let _ = writeln!(out, "- {}: {m:.3}{ci} against {}: {verdict}", r.case.name, side.name());
        }
    }

    fn render_throughput(&self, out: &mut String, target: &str) {
        let rows: Vec<&CaseResult> = self.results.iter().filter(|r| r.target == target && !r.case.is_latency()).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "| case | side | records x size | rec/s median | rec/s min | MB/s median | twitch ÷ this side (each round's) | paired [95% CI] | client CPU µs/record: app + librdkafka | limit (median CPU use) |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in rows {
            let size = if r.case.size == 0 {
                let bytes = r.of(Side::Raw).first().map_or(0, |s| s.bytes / s.records.max(1));
                format!("~{bytes} B")
            } else {
                human_bytes(r.case.size)
            };
            for (side, samples) in r.samples.iter().filter(|(_, v)| !v.is_empty()) {
                let side = *side;
                let s = CaseResult::summary(samples);
                let (ratio, paired) = r.cells(side);
                let cpu = match (s.app_us, s.rdkafka_us) {
                    (Some(app), Some(rdkafka)) => format!("{app:.3} + {rdkafka:.3}"),
                    _ => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} x {} | {} | {} | {:.1} | {} | {} | {} | {} |",
                    if side == Side::Raw { r.case.name } else { "" },
                    side.name(),
                    r.case.count,
                    size,
                    thousands(s.rps_median),
                    thousands(s.rps_min),
                    s.mbps_median,
                    ratio,
                    paired,
                    cpu,
                    limit(target, &s, false, self.mock_rps(r.case.name, side).filter(|_| target != "mock")),
                );
            }
        }
        let _ = writeln!(out);
        for r in self.results.iter().filter(|r| r.target == target && !r.case.is_latency()) {
            let passes = match r.case.mock_pass {
                Some(per) if target == "mock" && per < r.case.count => format!(
                    " (as {} passes of {per} records on fresh topics: the mock broker keeps only 5 MiB per partition)",
                    r.case.count.div_ceil(per)
                ),
                _ => String::new(),
            };
            let _ = writeln!(out, "- {}: {}{passes}", r.case.name, r.case.what);
        }
        let _ = writeln!(out);
    }

    fn render_latency(&self, out: &mut String, target: &str) {
        let rows: Vec<&CaseResult> = self.results.iter().filter(|r| r.target == target && r.case.is_latency()).collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "| case | side | records | p50 ms | p99 ms (min..max of rounds) | max ms | this side's p99 ÷ twitch's (each round's; higher = twitch better) | limit |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|");
        for r in rows {
            for (side, samples) in r.samples.iter().filter(|(_, v)| !v.is_empty()) {
                let side = *side;
                let s = CaseResult::summary(samples);
                let (ratio, _) = r.cells(side);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {:.2} ({:.2}..{:.2}) | {:.2} | {} | {} |",
                    if side == Side::Raw { r.case.name } else { "" },
                    side.name(),
                    r.case.count,
                    s.p50_ms,
                    s.p99_ms,
                    s.p99_min_ms,
                    s.p99_max_ms,
                    s.max_ms,
                    ratio,
                    limit(target, &s, true, None),
                );
            }
        }
        let _ = writeln!(out);
        for r in self.results.iter().filter(|r| r.target == target && r.case.is_latency()) {
            let _ = writeln!(out, "- {}: {}", r.case.name, r.case.what);
        }
        let _ = writeln!(out, "- latency values are medians over the rounds; each round's p50/p99/max come from every record of the round\n");
    }

    fn render_notes(&self, out: &mut String, targets: &[&str]) {
        let _ = writeln!(out, "## what limits the numbers\n");
        let _ = writeln!(
            out,
            "- mock: client-side cost only (in-process broker, no sockets to a separate process, no storage); \
             both clients and the mock brokers share the machine's CPUs, so 'machine' means both cores were busy."
        );
        if targets.contains(&"broker") {
            let _ = writeln!(
                out,
                "- broker: the numbers include the broker's own work; a 'broker' limit means the broker \
                 process used about one core or more while the client idled."
            );
            if targets.contains(&"mock") {
                let mut lines = Vec::new();
                for r in self.results.iter().filter(|r| r.target == "broker" && !r.case.is_latency()) {
                    if let Some(m) = self.mock_rps(r.case.name, Side::Raw) {
                        let b = CaseResult::summary(r.of(Side::Raw)).rps_median;
                        lines.push(format!("{} {:.0}%", r.case.name, 100.0 * b / m));
                    }
                }
                if !lines.is_empty() {
                    let _ = writeln!(
                        out,
                        "- broker throughput as a share of the mock's (raw side): {}. Where this is far below 100%, \
                         the broker is the limit, not the client.",
                        lines.join(", ")
                    );
                }
            }
        }
    }
}

/// The name of a ratio line against `other`: `ratio` against raw (as
/// before the peer column), `ratio-rskafka` and the like for the others.
fn line_name(what: &str, other: Side) -> String {
    if other == Side::Raw {
        what.to_owned()
    } else {
        format!("{what}-{}", other.name())
    }
}

fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: usize) -> String {
    if n >= 1024 && n % 1024 == 0 {
        format!("{} KB", n / 1024)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests;
