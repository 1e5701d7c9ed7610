//! The report's unit tests: ratios, intervals, the floor.

use super::*;

/// 1,000 records in `millis`.
fn sample(millis: u64) -> Sample {
    Sample {
        records: 1_000,
        bytes: 0,
        span: crate::stats::Span { wall: std::time::Duration::from_millis(millis), ..Default::default() },
        latency: None,
    }
}

#[test]
fn formats_numbers() {
    assert_eq!(thousands(1234567.4), "1,234,567");
    assert_eq!(thousands(999.0), "999");
    assert_eq!(human_bytes(10240), "10 KB");
    assert_eq!(human_bytes(320), "320 B");
}

#[test]
fn rounds_ratios_pair_each_rounds_two_sides() {
    let case = crate::cases::all(true).remove(0);
    let mut r = CaseResult::new("broker", case);
    // Round 1: twitch twice as fast; round 2: half as fast; round 3: equal.
    for (raw, twitch) in [(100, 50), (100, 200), (80, 80)] {
        r.push(Side::Raw, sample(raw));
        r.push(Side::Twitch, sample(twitch));
    }
    assert_eq!(r.round_ratio_range(Side::Raw), Some((0.5, 2.0)));
    // Medians: raw 10,000 rec/s, twitch 12,500.
    assert_eq!(r.ratio_cell(Side::Raw), "**1.25** (0.50..2.00)");
    assert_eq!(r.paired_cell(Side::Raw), "1.00", "the rounds' own ratios 2, 0.5 and 1; too few rounds for an interval");
    // Three more rounds (ratios 1.25, 1.25, 0.8): from six on, an interval.
    for (raw, twitch) in [(100, 80), (100, 80), (80, 100)] {
        r.push(Side::Raw, sample(raw));
        r.push(Side::Twitch, sample(twitch));
    }
    assert_eq!(r.paired_cell(Side::Raw), "1.12 [0.50, 2.00]");
    for (_, v) in &mut r.samples {
        v.truncate(1);
    }
    assert_eq!(r.ratio_cell(Side::Raw), "**2.00**", "one round has no range");
    assert_eq!(r.others().collect::<Vec<_>>(), [Side::Raw], "sides that never ran have no ratio");
    r.push(Side::Rskafka, sample(200));
    assert_eq!(r.ratio_cell(Side::Rskafka), "**4.00**");
    assert_eq!(line_name("paired", Side::Rskafka), "paired-rskafka");
    assert_eq!(line_name("ratio", Side::Raw), "ratio");
}

#[test]
fn the_floor_is_against_the_raw_side_that_promises_the_same() {
    let case = |name: &str| crate::cases::all(true).into_iter().find(|c| c.name == name).unwrap();
    // One round of `name` (raw, raw-stored and twitch taking these
    // milliseconds): its floor and its line in the report.
    let one_round = |name: &str, raw: u64, stored: u64, twitch: u64| {
        let mut r = CaseResult::new("broker", case(name));
        r.push(Side::Raw, sample(raw));
        r.push(Side::RawStored, sample(stored));
        r.push(Side::Twitch, sample(twitch));
        let floor = r.floor();
        let mut report = Report::new(String::new(), String::new(), 1, true);
        report.push(r);
        let mut out = String::new();
        report.render_floor(&mut out, "broker");
        (floor, out)
    };
    assert_eq!(CaseResult::new("broker", case("group-read")).floor(), None, "no rounds, no floor");
    // Acks of records read: against raw storing each processed offset.
    let (floor, out) = one_round("group-read", 80, 100, 100);
    assert_eq!(floor, Some((Side::RawStored, (1.0, None))));
    assert!(out.contains("- group-read: 1.000 against raw-stored: holds"), "{out}");
    // Records processed in order inside the reader: against plain raw.
    let (floor, out) = one_round("group-read-each", 90, 100, 100);
    assert_eq!(floor, Some((Side::Raw, (0.9, None))));
    assert!(out.contains("- group-read-each: 0.900 against raw: BELOW"), "{out}");
    assert_eq!(case("partition-read").like_for_like(), Side::Raw);
    assert_eq!(case("seed").like_for_like(), Side::Raw);
}
