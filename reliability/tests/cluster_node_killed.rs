//! One node of a 3-node Kafka cluster dies mid-scenario: the demo's third
//! scenario (`temp_gen` writes to a 3-partition topic, three `average_temp`
//! share it in one group) runs on a cluster of the test's own (ports
//! 19750-19752, replication factor 3, `min.insync.replicas` 2), and once
//! the members have read a quarter of the readings the node that leads
//! partition 0 is killed with SIGKILL.
//!
//! Checked: the others take over while it is down (readings keep being
//! written and read); it is started again on its log dir and catches up
//! (every replica in sync); `temp_gen` ends with every reading delivered
//! and the topic holds each exactly once (the idempotent producer's retries
//! to the new leaders add nothing); the group prints every reading; its
//! committed lag ends at 0.
//!
//! Figures go to stderr: `cargo test -p reliability --test cluster_node_killed -- --nocapture`.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use reliability::{
    active_controller, binaries, expected_readings, init_tracing, poll_until, topic_readings, unique,
    wait_until, App, Broker, ClusterView, Figures, Processed,
};
use twitch::KafkaCluster;

const FIRST_PORT: u16 = 19750;
const NODES: u16 = 3;
const READINGS: u64 = 9_000;
/// 9,000 readings 2 ms apart: about 18 s, time for the kill and the takeover.
const INTERVAL: &str = "2ms";
/// How many more readings the group must print while the node is down.
const WHILE_DOWN: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_scenario_loses_nothing() -> Result<()> {
    init_tracing();
    let started = tokio::time::Instant::now();
    let bins = binaries()?;
    let mut brokers = Broker::cluster(FIRST_PORT, NODES).await?;
    let outcome = scenario(&bins, &mut brokers).await;
    Broker::stop_all(&mut brokers).await?;
    let figures = outcome?;
    eprintln!("{figures}; took {:.1?}", started.elapsed());
    ensure!(figures.lost == 0, "readings lost: {figures}");
    Ok(())
}

async fn scenario(bins: &scenarios::Binaries, brokers: &mut [Broker]) -> Result<Figures> {
    let bootstrap = Broker::bootstrap(brokers);
    let cluster =
        KafkaCluster::builder(&bootstrap).client_id("reliability").broker_timeout(Duration::from_secs(30)).build()?;
    cluster.wait_for_brokers().await?;
    let view = ClusterView::new(&bootstrap)?;
    let topic = unique("rel-node-killed");
    cluster.ensure_topic(&twitch::TopicConfiguration::new(&topic, 3)).await?;
    let group = format!("{topic}-group");
    let args = ["--topic", &topic, "--group", &group, "--session-timeout", "10s", "--no-dead-letter"];
    let mut members = (1..=3)
        .map(|i| App::spawn(&format!("average_temp-{i}"), &bins.average_temp, &args, &bootstrap))
        .collect::<Result<Vec<_>>>()?;
    wait_until("the group to share the three partitions", Duration::from_secs(60), || {
        members.iter_mut().try_for_each(App::check_running)?;
        Ok(members.iter().all(|m| m.assignment().is_some_and(|p| p.len() == 1)))
    })
    .await?;
    let count = READINGS.to_string();
    let produce = ["--topic", topic.as_str(), "--count", &count, "--interval", INTERVAL, "--seed", "13"];
    let mut producer = App::spawn("temp_gen", &bins.temp_gen, &produce, &bootstrap)?;
    let printed = |members: &[App]| members.iter().map(App::reading_count).sum::<usize>();

    // The kill: the leader of partition 0, a quarter of the way in.
    let quarter = usize::try_from(READINGS / 4)?;
    wait_until("a quarter of the readings printed", Duration::from_secs(60), || {
        members.iter_mut().try_for_each(App::check_running)?;
        Ok(printed(&members) >= quarter)
    })
    .await?;
    let leaders = view.leaders(&topic).await?;
    let leader = leaders.iter().find(|(_, ps)| ps.contains(&0)).map(|(node, _)| *node).context("no leader of p0")?;
    let victim = brokers.iter().position(|b| b.node_id() == leader).context("the leader is none of our nodes")?;
    let was_controller = active_controller(brokers).await == Some(victim);
    producer.check_running().context("the kill must come while temp_gen writes")?;
    brokers[victim].kill().await?;
    let (killed_at, printed_at_kill) = (tokio::time::Instant::now(), printed(&members));
    eprintln!(
        "killed node {leader} ({}), leader of partitions {:?}{}, with {printed_at_kill} readings printed",
        brokers[victim].address(),
        leaders.get(&leader).cloned().unwrap_or_default(),
        if was_controller { " and the active controller" } else { "" }
    );

    // The other two carry on without it.
    let what = format!("{WHILE_DOWN} more readings printed while node {leader} is down");
    let carried_on = poll_until(&what, Duration::from_secs(30), || {
        members.iter_mut().try_for_each(App::check_running)?;
        Ok(printed(&members) >= printed_at_kill + WHILE_DOWN)
    })
    .await?;
    let takeover = killed_at.elapsed();
    ensure!(
        carried_on,
        "the cluster did not carry on without node {leader}: {} readings printed in {takeover:.1?} after the kill",
        printed(&members) - printed_at_kill
    );
    let new_leaders = view.leaders(&topic).await?;
    ensure!(!new_leaders.contains_key(&leader), "node {leader} is down but still leads {new_leaders:?}");
    brokers[victim].start_again().await?;
    let down = killed_at.elapsed();
    let healed = view.wait_fully_replicated(Duration::from_secs(60)).await?;
    eprintln!(
        "{WHILE_DOWN} readings printed {takeover:.1?} after the kill (leaders then {new_leaders:?}); node {leader} \
         down {down:.1?}, every replica in sync {healed:.1?} after it answered"
    );

    // Everything delivered once, printed, committed.
    producer.finish(Duration::from_secs(120)).await?.producer_summary(READINGS)?;
    let expected = expected_readings(READINGS, 3);
    let all = poll_until("every reading printed", Duration::from_secs(60), || {
        members.iter_mut().try_for_each(App::check_running)?;
        let seen: std::collections::BTreeSet<_> =
            members.iter().flat_map(|m| m.readings()).map(|r| Processed::key(&r)).collect();
        Ok(expected.is_subset(&seen))
    })
    .await?;
    if !all {
        eprintln!("not every reading was printed within 60 s after temp_gen ended");
    }
    let mut processed = Vec::new();
    for member in members {
        member.terminate()?;
        let finished = member.finish(Duration::from_secs(30)).await?;
        finished.check_stopped()?;
        processed.extend(finished.readings());
    }
    let lag = cluster.group_lag(&group, &topic).await?;
    let stored = topic_readings(&cluster, &topic).await?;
    let figures = Figures::new("3-node cluster, the leader of p0 SIGKILLed", &expected, &stored, &processed);
    ensure!(
        figures.not_delivered == 0 && figures.stored == READINGS,
        "the topic does not hold each reading once: {figures}"
    );
    ensure!(lag.iter().all(|p| p.lag == 0), "the group left records uncommitted: {lag:?}");
    Ok(figures)
}
