use super::*;

fn names(cases: &[Case]) -> Vec<&'static str> {
    cases.iter().map(|c| c.name).collect()
}

#[test]
fn an_exact_name_picks_one_case_other_text_every_match() {
    let pick = |f: &[&str]| names(&select(all(true), &f.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
    assert_eq!(pick(&["group-read"]), ["group-read"]);
    assert_eq!(pick(&["group"]), ["group-read", "group-read-owned", "group-read-each"]);
    assert_eq!(pick(&["seed", "latency-fetch10"]), ["seed", "latency-fetch10"]);
    assert_eq!(pick(&[]).len(), all(true).len());
    assert!(pick(&["nothing"]).is_empty());
}

#[test]
fn records_override_every_case_but_latency() {
    let mut cases = all(false);
    set_records(&mut cases, 7);
    for c in &cases {
        assert_eq!(c.count == 7, !c.is_latency(), "{}", c.name);
    }
}

/// raw-stored and twitch-noidem are variants of raw and twitch that
/// `run_pass` knows only for the group reads and the writes.
#[test]
fn each_side_runs_only_where_it_has_code() {
    for c in all(false) {
        let sides = c.sides();
        assert_eq!(sides.contains(&Side::RawStored), matches!(c.kind, Kind::GroupRead(_)), "{}", c.name);
        assert_eq!(
            sides.contains(&Side::TwitchNoIdem),
            matches!(c.kind, Kind::PartitionProduce { .. } | Kind::KeyedProduce),
            "{}",
            c.name
        );
    }
}
