//! Node kills that hit what matters: the active KRaft controller and the
//! leaders of the soak topic's partitions, one node at a time.

use std::fmt;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use tokio::time::Instant;

use crate::broker::active_controller;
use crate::{Broker, ClusterView};

/// How long a cluster may take to have every replica in sync again before
/// the next kill.
const HEAL_TIMEOUT: Duration = Duration::from_secs(90);

/// One node kill: whom it hit and how the cluster came back.
#[derive(Debug, Clone)]
pub struct Kill {
    /// Node id of the victim.
    pub node: i32,
    /// Its address.
    pub address: String,
    /// It was the active controller.
    pub controller: bool,
    /// Partitions of the soak topic it led.
    pub leads: Vec<i32>,
    /// How long the cluster took to get every replica in sync before the kill.
    pub healed_in: Duration,
    /// From the SIGKILL until it answered again.
    pub down: Duration,
}

impl fmt::Display for Kill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({})", self.node, self.address)?;
        if self.controller {
            write!(f, ", the active controller")?;
        }
        if !self.leads.is_empty() {
            write!(f, ", leader of partitions {:?}", self.leads)?;
        }
        Ok(())
    }
}

/// Kills the nodes of one cluster (or the one node) in turn.
pub(crate) struct Killer<'a> {
    brokers: &'a mut [Broker],
    view: ClusterView,
    topic: String,
    kills: u32,
}

impl<'a> Killer<'a> {
    pub(crate) fn new(brokers: &'a mut [Broker], view: ClusterView, topic: &str) -> Killer<'a> {
        Killer { brokers, view, topic: topic.to_owned(), kills: 0 }
    }

    /// The victim of the next kill, by index, with what it is: on a
    /// cluster, every other kill the active controller (read from the nodes'
    /// logs) and in between the node that leads most of the topic's
    /// partitions (from the metadata) among the others, or the controller
    /// again if it leads them all.
    async fn victim(&self) -> Result<(usize, bool, Vec<i32>)> {
        let leaders = self.view.leaders(&self.topic).await?;
        let leads = |i: usize| leaders.get(&self.brokers[i].node_id()).cloned().unwrap_or_default();
        let controller = self.controller().await?;
        let n = self.brokers.len();
        let victim = if n == 1 || self.kills % 2 == 0 {
            controller
        } else {
            // Most partitions led, among the nodes other than the controller
            // that lead any; among equals, the first after the controller.
            (1..n)
                .map(|k| (controller + k) % n)
                .filter(|&i| !leads(i).is_empty())
                .max_by_key(|&i| (leads(i).len(), std::cmp::Reverse((i + n - controller) % n)))
                .unwrap_or(controller)
        };
        Ok((victim, victim == controller, leads(victim)))
    }

    /// The active controller; waits for an election under way.
    async fn controller(&self) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = active_controller(self.brokers).await {
                return Ok(i);
            }
            ensure!(Instant::now() < deadline, "no running node became the active controller within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every replica is in sync (never two nodes short at once:
    /// a 3-node cluster with `min.insync.replicas` 2 stays writable through
    /// one), kills the next victim with SIGKILL, leaves it down for
    /// `downtime` and starts it again on its log dir.
    pub(crate) async fn kill_and_restart(&mut self, downtime: Duration) -> Result<Kill> {
        let healed_in = self.view.wait_fully_replicated(HEAL_TIMEOUT).await.context("before a node kill")?;
        let (i, controller, leads) = self.victim().await?;
        self.kills += 1;
        let broker = &mut self.brokers[i];
        let mut kill = Kill {
            node: broker.node_id(),
            address: broker.address(),
            controller,
            leads,
            healed_in,
            down: Duration::ZERO,
        };
        tracing::info!("SIGKILL {kill} (all replicas were in sync after {:.1} s)", healed_in.as_secs_f64());
        let killed = Instant::now();
        broker.kill().await?;
        tokio::time::sleep(downtime).await;
        broker.start_again().await?;
        kill.down = killed.elapsed();
        tracing::info!("node {} answers again after {:.1} s", kill.node, kill.down.as_secs_f64());
        Ok(kill)
    }
}
