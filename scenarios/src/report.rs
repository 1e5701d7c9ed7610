//! Scenario results: the table, the checks, PASS or FAIL.

use std::fmt;
use std::time::Duration;

use temps::{ConsumerSummary, ProducerSummary};

use crate::check::{evaluate, fmt_set, weighted_average, Check};
use crate::child::{Exit, Outcome};
use crate::{Config, Scenario};

/// Lines of a failed process's stderr shown in the report.
const SHOWN_STDERR: usize = 6;

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    /// Which scenario.
    pub scenario: Scenario,
    /// The topic it used.
    pub topic: String,
    /// Readings asked of the producer.
    pub expected: u64,
    /// Pause between readings.
    pub interval: Duration,
    /// The producer's seed.
    pub seed: u64,
    /// How `temp_gen` ended, and its summary if it printed one.
    pub producer: (Outcome, Option<ProducerSummary>),
    /// How each `average_temp` ended, and its summary if it printed one.
    pub consumers: Vec<(Outcome, Option<ConsumerSummary>)>,
    /// Everything checked; the scenario passes when all hold.
    pub checks: Vec<Check>,
    /// Wall time of the scenario.
    pub elapsed: Duration,
}

impl ScenarioReport {
    /// Parses the processes' last lines and runs the checks.
    pub(crate) fn new(
        scenario: Scenario,
        topic: String,
        config: &Config,
        producer: Outcome,
        consumers: Vec<Outcome>,
        elapsed: Duration,
    ) -> Self {
        let mut problems = Vec::new();
        let producer_summary = summary::<ProducerSummary>(&producer, &mut problems);
        let consumers: Vec<(Outcome, Option<ConsumerSummary>)> = consumers
            .into_iter()
            .map(|c| {
                let s = summary::<ConsumerSummary>(&c, &mut problems);
                (c, s)
            })
            .collect();
        let mut checks = vec![Check {
            passed: problems.is_empty(),
            what: "every process exited with 0 and printed its summary".to_owned(),
            detail: (!problems.is_empty()).then(|| problems.join("; ")),
        }];
        let parsed: Option<Vec<(&str, &ConsumerSummary)>> =
            consumers.iter().map(|(o, s)| s.as_ref().map(|s| (o.name.as_str(), s))).collect();
        if let (Some(p), Some(c)) = (&producer_summary, parsed) {
            checks.extend(evaluate(scenario, config.count, p, &c));
        }
        ScenarioReport {
            scenario,
            topic,
            expected: config.count,
            interval: config.interval,
            seed: config.seed,
            producer: (producer, producer_summary),
            consumers,
            checks,
            elapsed,
        }
    }

    /// True when every check holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// The process's summary, or why there is none (added to `problems`).
fn summary<T: std::str::FromStr<Err = temps::ParseSummaryError>>(
    outcome: &Outcome,
    problems: &mut Vec<String>,
) -> Option<T> {
    if outcome.exit != Exit::Success {
        let why = outcome.stderr_tail.last().map(|l| format!(" ({l})")).unwrap_or_default();
        problems.push(format!("{}: {}{why}", outcome.name, outcome.exit));
        return None;
    }
    match outcome.last_line.as_deref().map(str::parse::<T>) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            problems.push(format!("{}: {e}", outcome.name));
            None
        }
        None => {
            problems.push(format!("{}: printed nothing on stdout", outcome.name));
            None
        }
    }
}

fn mean(m: Option<f64>) -> String {
    m.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.6}"))
}

fn partitions(c: &ConsumerSummary) -> String {
    fmt_set(&c.partitions)
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== {}: {} ==", self.scenario, self.scenario.description())?;
        writeln!(
            f,
            "topic {}: {} readings, {} apart, seed {}",
            self.topic,
            self.expected,
            humantime::format_duration(self.interval),
            self.seed
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, parts: &str, count: String, avg: String| {
            writeln!(f, "  {name:<18} {parts:<11} {count:>9}  {avg:>11}")
        };
        row(f, "process", "partitions", "readings".into(), "average".into())?;
        let (p, ps) = &self.producer;
        match ps {
            Some(s) => row(f, &p.name, "-", s.produced.to_string(), mean(s.mean))?,
            None => row(f, &p.name, "-", "?".into(), "?".into())?,
        }
        for (c, cs) in &self.consumers {
            match cs {
                Some(s) => row(f, &c.name, &partitions(s), s.consumed.to_string(), mean(s.average))?,
                None => row(f, &c.name, "?", "?".into(), "?".into())?,
            }
        }
        if self.scenario.shared_group() && self.consumers.iter().all(|(_, s)| s.is_some()) {
            let all: Vec<&ConsumerSummary> = self.consumers.iter().filter_map(|(_, s)| s.as_ref()).collect();
            let union = ConsumerSummary {
                consumed: all.iter().map(|s| s.consumed).sum(),
                average: weighted_average(all.iter().copied()),
                partitions: all.iter().flat_map(|s| s.partitions.iter().copied()).collect(),
            };
            row(f, "group (weighted)", &partitions(&union), union.consumed.to_string(), mean(union.average))?;
        }
        for c in &self.checks {
            let mark = if c.passed { "ok  " } else { "FAIL" };
            match &c.detail {
                Some(d) => writeln!(f, "  [{mark}] {}: {d}", c.what)?,
                None => writeln!(f, "  [{mark}] {}", c.what)?,
            }
        }
        for (o, s) in std::iter::once((p, ps.is_some())).chain(self.consumers.iter().map(|(o, s)| (o, s.is_some()))) {
            if !s && !o.stderr_tail.is_empty() {
                writeln!(f, "  last lines of {}'s stderr:", o.name)?;
                for line in o.stderr_tail.iter().rev().take(SHOWN_STDERR).rev() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        write!(f, "{verdict} {} ({:.1} s)", self.scenario, self.elapsed.as_secs_f64())
    }
}

/// The results of several scenarios.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per scenario run, in order.
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    /// True when every scenario passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.scenarios {
            writeln!(f, "{s}\n")?;
        }
        let passed = self.scenarios.iter().filter(|s| s.passed()).count();
        write!(f, "{passed} of {} scenario(s) passed", self.scenarios.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Binaries;

    fn outcome(name: &str, exit: Exit, lines: &[&str], stderr: &[&str]) -> Outcome {
        Outcome {
            name: name.to_owned(),
            exit,
            last_line: lines.last().map(|l| (*l).to_owned()),
            stdout_lines: lines.len() as u64,
            stderr_tail: stderr.iter().map(|l| (*l).to_owned()).collect(),
            elapsed: Duration::from_secs(1),
        }
    }

    fn config(count: u64) -> Config {
        let mut c = Config::new("127.0.0.1:1", Binaries::in_dir(std::path::Path::new("/nowhere")));
        c.count = count;
        c
    }

    #[test]
    fn last_lines_are_parsed_into_a_passing_table() {
        let producer = outcome("temp_gen", Exit::Success, &["produced 6 readings, mean 20.000000"], &[]);
        let consumers = vec![
            outcome("average_temp-1", Exit::Success, &["sensor-002 p0@0 19.00 °C | ...", "consumed 2 readings, average 19.000000, partitions 0"], &[]),
            outcome("average_temp-2", Exit::Success, &["consumed 2 readings, average 20.000000, partitions 1"], &[]),
            outcome("average_temp-3", Exit::Success, &["consumed 2 readings, average 21.000000, partitions 2"], &[]),
        ];
        let r = ScenarioReport::new(Scenario::SameGroup, "t".into(), &config(6), producer, consumers, Duration::from_secs(9));
        assert!(r.passed(), "{r}");
        let text = r.to_string();
        assert!(text.contains("  group (weighted)   0,1,2               6    20.000000\n"), "{text}");
        assert!(text.ends_with("PASS 1-to-3-group (9.0 s)"), "{text}");
    }

    #[test]
    fn failed_processes_and_bad_lines_fail_with_their_stderr() {
        let producer = outcome(
            "temp_gen",
            Exit::Failed("exit status: 1".into()),
            &[],
            &["INFO starting", "temp_gen: error: topic `t` has 1 partition(s), but temp_gen needs 3"],
        );
        let consumers = vec![outcome("average_temp-1", Exit::Success, &["consumed lots"], &[])];
        let r = ScenarioReport::new(Scenario::OneToOne, "t".into(), &config(6), producer, consumers, Duration::ZERO);
        assert!(!r.passed());
        assert_eq!(r.checks.len(), 1, "no evaluation without summaries");
        let text = r.to_string();
        assert!(text.contains("temp_gen: exit status: 1 (temp_gen: error: topic `t` has 1 partition(s)"), "{text}");
        assert!(text.contains("average_temp-1: not a consumer summary line"), "{text}");
        assert!(text.contains("last lines of temp_gen's stderr:\n    INFO starting\n"), "{text}");
        assert!(text.ends_with("FAIL 1-to-1 (0.0 s)"), "{text}");

        let silent = outcome("average_temp-1", Exit::TimedOut(Duration::from_secs(3)), &[], &[]);
        let producer = outcome("temp_gen", Exit::Success, &["produced 6 readings, mean 20.000000"], &[]);
        let r = ScenarioReport::new(Scenario::OneToOne, "t".into(), &config(6), producer, vec![silent], Duration::ZERO);
        assert_eq!(
            r.checks[0].detail.as_deref(),
            Some("average_temp-1: killed: still running after 3s")
        );
    }
}
