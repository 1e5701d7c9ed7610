//! What `average_temp` shows while it runs: metrics (`--metrics`) and the
//! live page (`--http`), fed by the read loop and by a task that looks up
//! the lag of the reader's partitions every [`LAG_EVERY`].

use std::time::Duration;

use monitor::metrics::{ConsumerMetrics, Metrics};
use monitor::page::LivePage;
use monitor::MonitorError;
use temps::RunningMean;
use tracing::{debug, info};
use twitch::reader::GroupReaderBuilder;
use twitch::GroupReader;

/// How often the lag and the reader's counters are looked up, and
/// librdkafka's statistics come.
pub const LAG_EVERY: Duration = Duration::from_secs(1);

/// What `average_temp` shows, and how fast it sees readings.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Serve metrics in Prometheus' text format at http://ADDR/metrics
    /// (readings consumed, lag per partition, commits, averages per sensor,
    /// librdkafka's statistics), such as `127.0.0.1:9102`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Serve a live page at http://ADDR/: the average of each sensor and
    /// overall over time, and the lag per partition, updating by itself.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,

    /// How long the broker may hold a fetch back for want of readings
    /// (librdkafka's `fetch.wait.max.ms`): the latency a trickle of readings
    /// sees, at the cost of a fetch request that often while idle.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = humantime::parse_duration)]
    pub fetch_wait: Duration,
}

impl Options {
    /// The reader's settings for these options: twitch's `low_latency()`
    /// unless told otherwise, and librdkafka's statistics with `--metrics`.
    pub fn configure(&self, builder: GroupReaderBuilder) -> GroupReaderBuilder {
        let builder = match self.fetch_wait.as_millis() {
            10 => builder.low_latency(),
            ms => builder.set("fetch.wait.max.ms", &ms.to_string()),
        };
        match self.metrics {
            Some(_) => builder.statistics(LAG_EVERY),
            None => builder,
        }
    }
}

/// The metrics and the page, each when asked for.
#[derive(Debug, Default)]
pub struct Observer {
    metrics: Option<ConsumerMetrics>,
    page: Option<LivePage>,
}

impl Observer {
    /// Serves the metrics at `metrics` and the page at `http` (one server
    /// when the addresses are the same), and starts following `reader`.
    pub async fn start(options: &Options, topic: &str, reader: &GroupReader) -> Result<Observer, MonitorError> {
        let (metrics, http) = (options.metrics.as_deref(), options.http.as_deref());
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
