//! What `average_temp` shows while it runs: metrics (`--metrics`) and the
//! live page (`--http`), fed by the read loop and by a task that looks up
//! the lag of the reader's partitions every [`LAG_EVERY`].

use std::time::Duration;

use monitor::metrics::{ConsumerMetrics, Metrics};
use monitor::page::LivePage;
use monitor::MonitorError;
use temps::RunningMean;
use tracing::{debug, info};
use twitch::GroupReader;

/// How often the lag and the reader's counters are looked up, and
/// librdkafka's statistics come.
pub const LAG_EVERY: Duration = Duration::from_secs(1);

/// The metrics and the page, each when asked for.
#[derive(Debug, Default)]
pub struct Observer {
    metrics: Option<ConsumerMetrics>,
    page: Option<LivePage>,
}

impl Observer {
    /// Serves the metrics at `metrics` and the page at `http` (one server
    /// when the addresses are the same), and starts following `reader`.
    pub async fn start(
        metrics: Option<&str>,
        http: Option<&str>,
        topic: &str,
        reader: &GroupReader,
    ) -> Result<Observer, MonitorError> {
        let mut registry = Metrics::default();
        let observer = Observer {
            metrics: metrics.map(|_| ConsumerMetrics::register(&mut registry)),
            page: http.map(|_| LivePage::new(topic)),
        };
        match (metrics, http, &observer.page) {
            (Some(m), Some(h), Some(page)) if m == h => {
                let bound = monitor::serve(m, registry.router().merge(page.router())).await?;
                info!("metrics on http://{bound}/metrics, the live page on http://{bound}/");
            }
            (m, h, page) => {
                if let Some(addr) = m {
                    let bound = monitor::serve(addr, registry.router()).await?;
                    info!("metrics on http://{bound}/metrics");
                }
                if let (Some(addr), Some(page)) = (h, page) {
                    let bound = monitor::serve(addr, page.router()).await?;
                    info!("the live page on http://{bound}/");
                }
            }
        }
        if observer.metrics.is_some() || observer.page.is_some() {
            observer.follow(reader);
        }
        Ok(observer)
    }

    /// Looks up the lag and the counters every [`LAG_EVERY`], in a task of
    /// its own that ends with the reader.
    fn follow(&self, reader: &GroupReader) {
        let monitor = reader.monitor();
        if let Some(metrics) = &self.metrics {
            metrics.kafka.follow(monitor.telemetry());
        }
        let (metrics, page) = (self.metrics.clone(), self.page.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(LAG_EVERY);
            loop {
                ticks.tick().await;
                if let Some(metrics) = &metrics {
                    metrics.observe(monitor.counters());
                }
                match monitor.lag().await {
                    Ok(lag) => {
                        if let Some(metrics) = &metrics {
                            metrics.observe_lag(&lag);
                        }
                        if let Some(page) = &page {
                            page.lag(lag);
                        }
                    }
                    Err(e) => debug!(error = %e, "cannot look the lag up"),
                }
            }
        });
    }

    /// A reading of `sensor` was processed.
    pub fn reading(&self, sensor_name: &str, sensor: &RunningMean, overall: &RunningMean) {
        let (sensor_mean, overall_mean) = (sensor.mean().unwrap_or(f64::NAN), overall.mean().unwrap_or(f64::NAN));
        if let Some(metrics) = &self.metrics {
            metrics.reading(sensor_name, sensor_mean, overall_mean);
        }
        if let Some(page) = &self.page {
            page.reading(sensor_name, sensor_mean, sensor.count(), overall_mean, overall.count());
        }
    }

    /// A reading could not be decoded.
    pub fn undecodable(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.undecodable.inc();
        }
    }
}
