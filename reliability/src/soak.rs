//! The soak: `temp_gen` writes N readings while members of one group of
//! `average_temp` read them; at points spread over the run, members are
//! killed with SIGKILL (and a new one started in their place) and Kafka
//! nodes are killed with SIGKILL (and started again on their log dirs): on a
//! cluster the active controller and partition leaders, one node at a time,
//! optionally several in a burst. At the end every reading must have been
//! processed, the group's committed lag must be 0, and the figures say what
//! it took.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use scenarios::Binaries;
use tokio::time::Instant;
use twitch::KafkaCluster;

use crate::kills::{Kill, Killer};
use crate::{
    expected_readings, poll_until, topic_readings, unique, App, Broker, ClusterView, Figures, Finished, Key,
    Processed,
};

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Soak {
    /// Readings `temp_gen` writes (over 3 sensors).
    pub readings: u64,
    /// `temp_gen --interval`: `0` writes as fast as the broker takes them.
    pub interval: String,
    /// Members of the group reading them.
    pub members: usize,
    /// Members killed with SIGKILL (each replaced by a new one at once).
    pub member_kills: u32,
    /// Nodes killed with SIGKILL (each started again after `downtime`).
    pub broker_kills: u32,
    /// Nodes killed back to back in one burst, once a share of the readings
    /// is printed: each is started again at once and, as soon as every
    /// replica is in sync again, the next is killed (0: no burst).
    pub packed_kills: u32,
    /// How long a killed node stays down (outside a burst).
    pub downtime: Duration,
    /// The members' session timeout: how long the group waits for a member
    /// that died without leaving.
    pub session_timeout: Duration,
    /// How long the broker may hold the members' fetches back for want of
    /// records (`average_temp --fetch-wait`). librdkafka's 500 ms, not the
    /// app's low-latency 10 ms: the soak counts readings, not latency, and
    /// fewer empty fetches leave more of a small machine to the nodes.
    pub fetch_wait: Duration,
    /// Seed of the order and choice of kills.
    pub seed: u64,
    /// How long the readings may take to be processed after the last kill.
    pub settle: Duration,
}

impl Default for Soak {
    fn default() -> Self {
        Soak {
            readings: 1_000_000,
            interval: "0".into(),
            members: 3,
            member_kills: 20,
            broker_kills: 5,
            packed_kills: 0,
            downtime: Duration::from_secs(2),
            session_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(500),
            seed: 1,
            settle: Duration::from_secs(300),
        }
    }
}

/// What a soak did and found.
#[derive(Debug, Clone)]
pub struct SoakFigures {
    /// Produced, delivered, consumed, lost and duplicated readings.
    pub figures: Figures,
    /// What `temp_gen` said it delivered.
    pub producer_delivered: u64,
    /// Members killed with SIGKILL.
    pub member_kills: u32,
    /// Nodes killed with SIGKILL, in order (the burst's included).
    pub kills: Vec<Kill>,
    /// Of them, the ones in the burst.
    pub packed_kills: u32,
    /// From the burst's first SIGKILL until its last victim answered again.
    pub packed_span: Duration,
    /// Kills (of members and nodes) that came while temp_gen was writing.
    pub kills_mid_stream: u32,
    /// Kills that came while the group had yet to print every reading
    /// (fewer reading lines printed than readings written, duplicates
    /// included): the others hit a group with nothing left to read.
    pub kills_while_reading: u32,
    /// The group's committed lag over all partitions at the end.
    pub lag: i64,
    /// From the first reading written to the last processed.
    pub wall: Duration,
}

impl SoakFigures {
    /// Processes started again after a kill: every killed member is
    /// replaced and every killed broker started again.
    pub fn restarts(&self) -> u32 {
        self.member_kills + self.broker_kills()
    }

    /// Nodes killed with SIGKILL.
    pub fn broker_kills(&self) -> u32 {
        u32::try_from(self.kills.len()).unwrap_or(u32::MAX)
    }

    /// Node kills that hit the active controller.
    pub fn controller_kills(&self) -> u32 {
        u32::try_from(self.kills.iter().filter(|k| k.controller).count()).unwrap_or(u32::MAX)
    }

    /// Node kills that hit a leader of the soak topic's partitions.
    pub fn leader_kills(&self) -> u32 {
        u32::try_from(self.kills.iter().filter(|k| !k.leads.is_empty()).count()).unwrap_or(u32::MAX)
    }

    /// Fails unless every reading was delivered and processed and the
    /// group's committed lag is 0.
    pub fn check(&self) -> Result<()> {
        let f = &self.figures;
        ensure!(f.not_delivered == 0, "{} readings missing from the topic: {self}", f.not_delivered);
        ensure!(f.lost == 0, "{} readings never processed: {self}", f.lost);
        ensure!(self.lag == 0, "committed lag is {} at the end: {self}", self.lag);
        Ok(())
    }
}

impl fmt::Display for SoakFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.figures;
        write!(
            f,
            "produced {}, delivered {} (temp_gen: {}), consumed {} ({} distinct), lost {}, duplicates {}, \
             member kills {}, node kills {} (of the active controller {}, of a partition leader {}; {} in a burst of \
             {:.1} s), kills while temp_gen wrote {}, while the group read {}, restarts {}, committed lag {}, wall time {:.1} s",
            g.produced,
            g.delivered,
            self.producer_delivered,
            g.consumed,
            g.distinct,
            g.lost,
            g.duplicated,
            self.member_kills,
            self.broker_kills(),
            self.controller_kills(),
            self.leader_kills(),
            self.packed_kills,
            self.packed_span.as_secs_f64(),
            self.kills_mid_stream,
            self.kills_while_reading,
            self.restarts(),
            self.lag,
            self.wall.as_secs_f64()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Member,
    Broker,
    Burst,
}

/// The group's members, alive and dead.
struct Group<'a> {
    soak: &'a Soak,
    bins: &'a Binaries,
    brokers: String,
    topic: String,
    group: String,
    alive: Vec<App>,
    /// Readings printed by members that were killed.
    dead: Vec<Processed>,
    started: u32,
}

impl Group<'_> {
    fn spawn(&mut self) -> Result<()> {
        self.started += 1;
        let name = format!("average_temp-{}", self.started);
        let timeout = format!("{}ms", self.soak.session_timeout.as_millis());
        let wait = format!("{}ms", self.soak.fetch_wait.as_millis());
        let args = [
            "--topic", &self.topic, "--group", &self.group, "--session-timeout", &timeout, "--fetch-wait", &wait,
            "--no-dead-letter",
        ];
        self.alive.push(App::spawn(&name, &self.bins.average_temp, &args, &self.brokers)?);
        Ok(())
    }

    /// Reading lines printed so far, by every member.
    fn printed(&self) -> usize {
        self.dead.len() + self.alive.iter().map(App::reading_count).sum::<usize>()
    }

    fn check_running(&mut self) -> Result<()> {
        self.alive.iter_mut().try_for_each(App::check_running)
    }

    /// Kills member `i` with SIGKILL, keeps what it printed and starts a new
    /// member in its place.
    async fn kill(&mut self, i: usize) -> Result<()> {
        let mut member = self.alive.swap_remove(i);
        member.kill()?;
        let finished = member.finish(Duration::from_secs(10)).await?;
        self.dead.extend(finished.readings());
        self.spawn()
    }

    /// The end of each live member's stderr, for failure messages.
    fn tails(&self, lines: usize) -> String {
        let tail = |m: &App| {
            let stderr = m.stderr();
            format!("  {}:\n    {}", m.name(), stderr[stderr.len().saturating_sub(lines)..].join("\n    "))
        };
        self.alive.iter().map(tail).collect::<Vec<_>>().join("\n")
    }

    /// The distinct readings printed so far.
    fn seen(&self) -> BTreeSet<Key> {
        let mut seen: BTreeSet<Key> = self.dead.iter().map(Processed::key).collect();
        for member in &self.alive {
            seen.extend(member.readings().iter().map(Processed::key));
        }
        seen
    }

    /// Stops the members (SIGINT: they commit and leave) and returns every
    /// reading printed.
    async fn stop(mut self) -> Result<Vec<Processed>> {
        let mut processed = std::mem::take(&mut self.dead);
        for member in std::mem::take(&mut self.alive) {
            member.interrupt()?;
            let finished: Finished = member.finish(Duration::from_secs(30)).await?;
            finished.check_stopped()?;
            processed.extend(finished.readings());
        }
        Ok(processed)
    }
}

/// Runs `soak` against `brokers` (one node, or the nodes of one cluster),
/// which it kills and starts again.
pub async fn run(soak: &Soak, bins: &Binaries, brokers: &mut [Broker]) -> Result<SoakFigures> {
    ensure!(!brokers.is_empty(), "the soak needs a broker");
    let bootstrap = Broker::bootstrap(brokers);
    let cluster =
        KafkaCluster::builder(&bootstrap).client_id("soak").broker_timeout(Duration::from_secs(30)).build()?;
    cluster.wait_for_brokers().await?;
    let topic = unique("soak");
    cluster.ensure_topic(&twitch::TopicConfiguration::new(&topic, 3)).await?;
    let mut killer = Killer::new(brokers, ClusterView::new(&bootstrap)?, &topic);
    let mut rng = XorShiftRng::seed_from_u64(soak.seed);
    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::Member, soak.member_kills as usize)
        .chain(std::iter::repeat_n(Fault::Broker, soak.broker_kills as usize))
        .chain((soak.packed_kills > 0).then_some(Fault::Burst))
        .collect();
    faults.shuffle(&mut rng);

    let mut group = Group {
        soak,
        bins,
        brokers: bootstrap.clone(),
        group: format!("{topic}-group"),
        topic: topic.clone(),
        alive: Vec::new(),
        dead: Vec::new(),
        started: 0,
    };
    for _ in 0..soak.members {
        group.spawn()?;
    }
    let count = soak.readings.to_string();
    let args = ["--topic", &topic, "--count", &count, "--interval", &soak.interval, "--seed", "7"];
    let mut producer = App::spawn("temp_gen", &bins.temp_gen, &args, &bootstrap)?;
    let started = Instant::now();

    // Fault k comes once (k + 1) / (faults + 1) of the readings are printed,
    // and at least two seconds after the one before.
    let (mut member_kills, mut kills, mut kills_mid_stream, mut kills_while_reading) = (0, Vec::new(), 0, 0);
    let all = usize::try_from(soak.readings)?;
    let mut packed_span = Duration::ZERO;
    let total = faults.len() as u64 + 1;
    for (k, fault) in faults.iter().enumerate() {
        let due = usize::try_from(soak.readings * (k as u64 + 1) / total)?;
        let what = format!("{due} readings printed before fault {}", k + 1);
        let reached = poll_until(&what, soak.settle, || {
            group.check_running()?;
            Ok(group.printed() >= due)
        })
        .await?;
        ensure!(
            reached,
            "only {} readings printed after {:?}; the group stalls. The members' last lines:\n{}",
            group.printed(),
            soak.settle,
            group.tails(12)
        );
        let at = format!("{:.1} s, {} printed", started.elapsed().as_secs_f64(), group.printed());
        let (writing, reading) = (producer.check_running().is_ok(), group.printed() < all);
        match fault {
            Fault::Member => {
                let i = rng.gen_range(0..group.alive.len());
                tracing::info!("{at}: SIGKILL {}", group.alive[i].name());
                group.kill(i).await?;
                member_kills += 1;
                kills_mid_stream += u32::from(writing);
                kills_while_reading += u32::from(reading);
            }
            Fault::Broker => {
                tracing::info!("{at}: node kill {}", kills.len() + 1);
                kills.push(killer.kill_and_restart(soak.downtime).await?);
                kills_mid_stream += u32::from(writing);
                kills_while_reading += u32::from(reading);
            }
            Fault::Burst => {
                tracing::info!("{at}: a burst of {} node kills", soak.packed_kills);
                let mut first = None;
                for _ in 0..soak.packed_kills {
                    let (writing, reading) = (producer.check_running().is_ok(), group.printed() < all);
                    let kill = killer.kill_and_restart(Duration::ZERO).await?;
                    // The burst starts at its first SIGKILL: the wait for in-sync replicas before it is not part of it.
                    first.get_or_insert(Instant::now() - kill.down);
                    kills.push(kill);
                    kills_mid_stream += u32::from(writing);
                    kills_while_reading += u32::from(reading);
                }
                packed_span = first.map_or(Duration::ZERO, |t| t.elapsed());
                tracing::info!("the burst took {:.1} s", packed_span.as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let produced = producer.finish(soak.settle).await?.producer_summary(soak.readings)?.produced;
    let expected = expected_readings(soak.readings, 3);
    if !every_reading_printed(&mut group, &expected, soak.settle).await? {
        tracing::warn!("not every reading was printed within {:?} after temp_gen ended", soak.settle);
    }
    let wall = started.elapsed();
    let lag = settled_lag(&cluster, &group.group, &topic).await?;
    let processed = group.stop().await?;
    let stored = topic_readings(&cluster, &topic).await?;
    let figures = Figures::new(&format!("soak {topic}"), &expected, &stored, &processed);
    Ok(SoakFigures {
        figures,
        producer_delivered: produced,
        member_kills,
        kills,
        packed_kills: soak.packed_kills,
        packed_span,
        kills_mid_stream,
        kills_while_reading,
        lag,
        wall,
    })
}

/// Waits until the members printed every `expected` reading; false after
/// `timeout`. Looks once a second: telling the distinct readings apart
/// parses every line printed.
async fn every_reading_printed(group: &mut Group<'_>, expected: &BTreeSet<Key>, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        group.check_running()?;
        if group.printed() >= expected.len() && expected.is_subset(&group.seen()) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The group's committed lag over all partitions, once it reaches 0 or
/// after 30 s (the members commit every second).
async fn settled_lag(cluster: &KafkaCluster, group: &str, topic: &str) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lag: i64 = cluster.group_lag(group, topic).await?.iter().map(|p| p.lag).sum();
        if lag == 0 || Instant::now() >= deadline {
            return Ok(lag);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The soak on a fresh cluster of `nodes` Kafka nodes from port `first`
/// ([`Broker::cluster`]), stopped at the end whatever the outcome; prints
/// the figures and each node kill to stderr under `label`.
pub async fn on_cluster(soak: &Soak, bins: &Binaries, first: u16, nodes: u16, label: &str) -> Result<SoakFigures> {
    let mut brokers = Broker::cluster(first, nodes).await?;
    let outcome = run(soak, bins, &mut brokers).await;
    Broker::stop_all(&mut brokers).await?;
    let figures = outcome?;
    eprintln!("FIGURES {label} ({nodes} Kafka nodes): {figures}");
    for kill in &figures.kills {
        eprintln!("  killed {kill}, down {:.1} s", kill.down.as_secs_f64());
    }
    Ok(figures)
}
