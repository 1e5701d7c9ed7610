//! What each scenario must show, checked on the apps' summary lines.

use std::collections::BTreeSet;

use temps::{ConsumerSummary, ProducerSummary};

use crate::{Scenario, PARTITIONS};

/// How far an average may be from the producer's mean: both are printed
/// with 6 decimals, so each is off by up to 0.5e-6 from the exact value.
pub const TOLERANCE: f64 = 1e-6;
/// Room for the binary representation of two parsed 6-decimal numbers.
const FLOAT_SLACK: f64 = 1e-9;

/// One checked expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Whether it holds.
    pub passed: bool,
    /// What was expected, such as `counts add up to 300`.
    pub what: String,
    /// What was found, when that helps.
    pub detail: Option<String>,
}

impl Check {
    fn new(passed: bool, what: impl Into<String>, detail: Option<String>) -> Self {
        Check { passed, what: what.into(), detail }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE + FLOAT_SLACK
}

/// Partitions as `0,1,2`, or `none`.
pub(crate) fn fmt_set(set: &BTreeSet<i32>) -> String {
    if set.is_empty() {
        return "none".to_owned();
    }
    set.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn fmt_mean(mean: Option<f64>) -> String {
    mean.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.6}"))
}

/// The average of every reading the consumers saw, each consumer weighted by
/// its count; `None` when they saw none.
pub fn weighted_average<'a>(consumers: impl IntoIterator<Item = &'a ConsumerSummary>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u64);
    for c in consumers {
        if let Some(avg) = c.average {
            sum += avg * c.consumed as f64;
            n += c.consumed;
        }
    }
    (n > 0).then(|| sum / n as f64)
}

/// Checks what `scenario` must show, given the producer's summary and each
/// consumer's (by name), when `expected` readings were asked for:
///
/// * always: the producer produced `expected` readings;
/// * `1-to-1` and `1-to-3`: every consumer read all of them, from all three
///   partitions, and its average equals the producer's mean;
/// * `1-to-3-group`: the counts add up to `expected`, the consumers'
///   partitions are disjoint, cover all three, none is left without one, and
///   the count-weighted average equals the producer's mean.
///
/// Averages must agree within [`TOLERANCE`].
pub fn evaluate(
    scenario: Scenario,
    expected: u64,
    producer: &ProducerSummary,
    consumers: &[(&str, &ConsumerSummary)],
) -> Vec<Check> {
    let mut checks = vec![Check::new(
        producer.produced == expected,
        format!("temp_gen produced {expected} readings"),
        (producer.produced != expected).then(|| format!("it produced {}", producer.produced)),
    )];
    checks.push(Check::new(
        consumers.len() == scenario.consumers(),
        format!("{} consumer(s) reported", scenario.consumers()),
        (consumers.len() != scenario.consumers()).then(|| format!("{} did", consumers.len())),
    ));
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let mean_matches = |what: String, average: Option<f64>| match (average, producer.mean) {
        (Some(a), Some(m)) => Check::new(
            close(a, m),
            what,
            (!close(a, m)).then(|| format!("{a:.6} vs {m:.6}, off by {:.1e}", (a - m).abs())),
        ),
        (a, m) => Check::new(false, what, Some(format!("{} vs {}", fmt_mean(a), fmt_mean(m)))),
    };

    if !scenario.shared_group() {
        for (name, c) in consumers {
            checks.push(Check::new(
                c.consumed == expected,
                format!("{name} read all {expected} readings"),
                (c.consumed != expected).then(|| format!("it read {}", c.consumed)),
            ));
            checks.push(Check::new(
                c.partitions == all,
                format!("{name} read all partitions {}", fmt_set(&all)),
                (c.partitions != all).then(|| format!("it had {}", fmt_set(&c.partitions))),
            ));
            checks.push(mean_matches(format!("{name}'s average is the producer's mean (±{TOLERANCE:.0e})"), c.average));
        }
        return checks;
    }

    let total: u64 = consumers.iter().map(|(_, c)| c.consumed).sum();
    checks.push(Check::new(
        total == expected,
        format!("the group's counts add up to {expected}"),
        (total != expected).then(|| format!("they add up to {total}")),
    ));
    let mut overlaps = Vec::new();
    for (i, (a, ca)) in consumers.iter().enumerate() {
        for (b, cb) in &consumers[i + 1..] {
            let both: BTreeSet<i32> = ca.partitions.intersection(&cb.partitions).copied().collect();
            if !both.is_empty() {
                overlaps.push(format!("{a} and {b} both had {}", fmt_set(&both)));
            }
        }
    }
    checks.push(Check::new(
        overlaps.is_empty(),
        "each partition went to one consumer only",
        (!overlaps.is_empty()).then(|| overlaps.join("; ")),
    ));
    let union: BTreeSet<i32> = consumers.iter().flat_map(|(_, c)| c.partitions.iter().copied()).collect();
    checks.push(Check::new(
        union == all,
        format!("together they had partitions {}", fmt_set(&all)),
        (union != all).then(|| format!("they had {}", fmt_set(&union))),
    ));
    let idle: Vec<&str> = consumers.iter().filter(|(_, c)| c.partitions.is_empty()).map(|(n, _)| *n).collect();
    checks.push(Check::new(
        idle.is_empty(),
        "every consumer had a partition",
        (!idle.is_empty()).then(|| format!("without: {}", idle.join(", "))),
    ));
    checks.push(mean_matches(
        format!("the count-weighted average is the producer's mean (±{TOLERANCE:.0e})"),
        weighted_average(consumers.iter().map(|(_, c)| *c)),
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(n: u64, mean: f64) -> ProducerSummary {
        ProducerSummary { produced: n, mean: Some(mean) }
    }

    fn consumer(n: u64, avg: f64, partitions: &[i32]) -> ConsumerSummary {
        ConsumerSummary { consumed: n, average: Some(avg), partitions: partitions.iter().copied().collect() }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks.iter().filter(|c| !c.passed).map(|c| c.what.as_str()).collect()
    }

    #[test]
    fn one_to_one_passes_and_fails_on_count_average_and_partitions() {
        let good = consumer(300, 21.000001, &[0, 1, 2]);
        let checks = evaluate(Scenario::OneToOne, 300, &producer(300, 21.0), &[("c", &good)]);
        assert!(failed(&checks).is_empty(), "{checks:?}");
        assert_eq!(checks.len(), 5);

        let bad = consumer(299, 21.000002, &[0, 2]);
        let checks = evaluate(Scenario::OneToOne, 300, &producer(300, 21.0), &[("c", &bad)]);
        assert_eq!(
            failed(&checks),
            ["c read all 300 readings", "c read all partitions 0,1,2", "c's average is the producer's mean (±1e-6)"]
        );
        let detail = checks.iter().find(|c| c.what.contains("average")).and_then(|c| c.detail.clone());
        assert_eq!(detail.as_deref(), Some("21.000002 vs 21.000000, off by 2.0e-6"));
    }

    #[test]
    fn one_to_three_checks_every_consumer() {
        let good = consumer(300, 21.0, &[0, 1, 2]);
        let short = consumer(200, 21.0, &[0, 1, 2]);
        let checks = evaluate(Scenario::OneToThree, 300, &producer(300, 21.0), &[("a", &good), ("b", &short), ("c", &good)]);
        assert_eq!(failed(&checks), ["b read all 300 readings"]);
        let checks = evaluate(Scenario::OneToThree, 300, &producer(300, 21.0), &[("a", &good), ("c", &good)]);
        assert_eq!(failed(&checks), ["3 consumer(s) reported"]);
    }

    #[test]
    fn same_group_needs_disjoint_covering_partitions_and_the_weighted_mean() {
        let p = producer(300, 20.0);
        let (a, b, c) = (consumer(100, 19.0, &[0]), consumer(100, 20.0, &[1]), consumer(100, 21.0, &[2]));
        let checks = evaluate(Scenario::SameGroup, 300, &p, &[("a", &a), ("b", &b), ("c", &c)]);
        assert!(failed(&checks).is_empty(), "{checks:?}");

        // Uneven counts are weighted.
        let (a, b) = (consumer(200, 19.0, &[0, 1]), consumer(100, 22.0, &[2]));
        let none = ConsumerSummary { consumed: 0, average: None, partitions: BTreeSet::new() };
        let checks = evaluate(Scenario::SameGroup, 300, &p, &[("a", &a), ("b", &b), ("c", &none)]);
        assert_eq!(failed(&checks), ["every consumer had a partition"]);

        let (a, b, c) = (consumer(150, 20.0, &[0, 1]), consumer(150, 20.0, &[1]), consumer(0, 0.0, &[]));
        let checks = evaluate(Scenario::SameGroup, 300, &p, &[("a", &a), ("b", &b), ("c", &c)]);
        assert_eq!(
            failed(&checks),
            ["each partition went to one consumer only", "together they had partitions 0,1,2", "every consumer had a partition"]
        );
        assert_eq!(checks[3].detail.as_deref(), Some("a and b both had 1"));

        // Duplicates show in the sum.
        let dup = consumer(110, 20.0, &[2]);
        let (a, b) = (consumer(100, 20.0, &[0]), consumer(100, 20.0, &[1]));
        let checks = evaluate(Scenario::SameGroup, 300, &p, &[("a", &a), ("b", &b), ("c", &dup)]);
        assert_eq!(failed(&checks), ["the group's counts add up to 300"]);
    }

    #[test]
    fn rounding_to_six_decimals_is_tolerated() {
        // Exact means 20.0000004999 and 20.0000005001 print as 20.000000 and
        // 20.000001: one unit apart in the last place.
        assert!(close(20.000000, 20.000001));
        assert!(!close(20.000000, 20.000002));
        let p = producer(3, 20.000001);
        let c = consumer(3, 20.0, &[0, 1, 2]);
        assert!(failed(&evaluate(Scenario::OneToOne, 3, &p, &[("c", &c)])).is_empty());
    }

    #[test]
    fn missing_means_fail() {
        let p = ProducerSummary { produced: 0, mean: None };
        let c = ConsumerSummary { consumed: 0, average: None, partitions: [0, 1, 2].into() };
        let checks = evaluate(Scenario::OneToOne, 0, &p, &[("c", &c)]);
        assert_eq!(failed(&checks), ["c's average is the producer's mean (±1e-6)"]);
        assert_eq!(weighted_average([&c]), None);
    }
}
