//! `average_temp`'s live page: the average of each sensor and overall over
//! time, and the lag of each partition, redrawn on the server every
//! [`FRAME_EVERY`] while readings flow and pushed to the browser over
//! server-sent events (`GET /events`). `GET /` serves the page with the
//! current drawing in it, so it shows the numbers even without its script.
//!
//! ```
//! use monitor::page::LivePage;
//!
//! let page = LivePage::new("temperatures");
//! page.reading("sensor-001", 21.0, 1, 21.0, 1);
//! page.reading("sensor-002", 23.0, 1, 22.0, 2);
//! let html = page.fragment();
//! assert!(html.contains(r#"<tr data-sensor="overall"><td>overall</td><td class="count">2</td><td class="average">22.000000</td>"#));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tracing::info;
use twitch::reader::PartitionLag;

use crate::svg::{escape, line_chart, Series};

/// How often the page is redrawn while something changed.
pub const FRAME_EVERY: Duration = Duration::from_millis(500);
/// Points kept per line: five minutes of frames.
const HISTORY: usize = 600;
/// The name of the line of all sensors together.
pub const OVERALL: &str = "overall";

/// What the app logs (at `info`) when a page starts listening for frames.
pub const LIVE_PAGE_CONNECTED: &str = "a live page connected";

/// A running average now: `(mean, count)`.
type Mean = (f64, u64);

#[derive(Debug)]
struct State {
    started: Instant,
    sensors: BTreeMap<String, Mean>,
    overall: Option<Mean>,
    lag: Vec<PartitionLag>,
    averages: BTreeMap<String, VecDeque<(f64, f64)>>,
    lags: BTreeMap<String, VecDeque<(f64, f64)>>,
    changed: bool,
}

fn push(history: &mut BTreeMap<String, VecDeque<(f64, f64)>>, name: &str, point: (f64, f64)) {
    let line = history.entry(name.to_owned()).or_default();
    if line.len() == HISTORY {
        line.pop_front();
    }
    line.push_back(point);
}

fn series(history: &BTreeMap<String, VecDeque<(f64, f64)>>) -> Vec<Series> {
    history
        .iter()
        .map(|(name, points)| Series { name: name.clone(), points: points.iter().copied().collect(), bold: name == OVERALL })
        .collect()
}

impl State {
    /// Adds the current values to the lines.
    fn sample(&mut self) {
        let t = self.started.elapsed().as_secs_f64();
        for (sensor, (mean, _)) in &self.sensors {
            push(&mut self.averages, sensor, (t, *mean));
        }
        if let Some((mean, _)) = self.overall {
            push(&mut self.averages, OVERALL, (t, mean));
        }
        for p in &self.lag {
            let name = format!("partition {}", p.partition.partition);
            push(&mut self.lags, &name, (t, p.lag as f64));
        }
    }

    /// The charts and the tables, as HTML.
    fn render(&self) -> String {
        let mut out = String::new();
        let sensors = series(&self.averages);
        // Writing to a String cannot fail.
        let _ = write!(out, "<h2>Average per sensor</h2><div id=\"averages\">{}</div>", line_chart("°C", &sensors, 900, 320));
        out.push_str(r#"<table id="sensors"><tr><th>sensor</th><th>readings</th><th>average °C</th></tr>"#);
        let rows = self.sensors.iter().map(|(s, m)| (s.as_str(), *m)).chain(self.overall.map(|m| (OVERALL, m)));
        for (sensor, (mean, count)) in rows {
            let sensor = escape(sensor);
            let _ = write!(
                out,
                r#"<tr data-sensor="{sensor}"><td>{sensor}</td><td class="count">{count}</td><td class="average">{mean:.6}</td></tr>"#
            );
        }
        out.push_str("</table>");
        let lags = series(&self.lags);
        let _ = write!(out, "<h2>Lag per partition</h2><div id=\"lags\">{}</div>", line_chart("records", &lags, 900, 200));
        out.push_str(r#"<table id="lag"><tr><th>partition</th><th>committed</th><th>high watermark</th><th>lag</th></tr>"#);
        for p in &self.lag {
            let committed = p.committed.map_or_else(|| "none".to_owned(), |c| c.to_string());
            let _ = write!(
                out,
                r#"<tr data-partition="{0}"><td>{1}/{0}</td><td>{committed}</td><td>{2}</td><td class="lag">{3}</td></tr>"#,
                p.partition.partition,
                escape(&p.partition.topic),
                p.high_watermark,
                p.lag
            );
        }
        out.push_str("</table>");
        out
    }
}

#[derive(Debug)]
struct Inner {
    topic: String,
    state: Mutex<State>,
    frames: watch::Sender<Arc<String>>,
}

/// The live page's state, shared by the app (which feeds it readings and
/// lag) and the HTTP server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LivePage {
    inner: Arc<Inner>,
}

impl LivePage {
    /// A page of the averages of `topic`'s readings.
    pub fn new(topic: &str) -> Self {
        let state = State {
            started: Instant::now(),
            sensors: BTreeMap::new(),
            overall: None,
            lag: Vec::new(),
            averages: BTreeMap::new(),
            lags: BTreeMap::new(),
            changed: false,
        };
        let frames = watch::Sender::new(Arc::new(state.render()));
        LivePage { inner: Arc::new(Inner { topic: topic.to_owned(), state: Mutex::new(state), frames }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reading was processed: its sensor's average and count, and the
    /// overall ones, now.
    pub fn reading(&self, sensor: &str, sensor_mean: f64, sensor_count: u64, overall_mean: f64, overall_count: u64) {
        let mut state = self.state();
        match state.sensors.get_mut(sensor) {
            Some(m) => *m = (sensor_mean, sensor_count),
            None => {
                state.sensors.insert(sensor.to_owned(), (sensor_mean, sensor_count));
            }
        }
        state.overall = Some((overall_mean, overall_count));
        state.changed = true;
    }

    /// The lag of the reader's partitions now.
    pub fn lag(&self, lag: Vec<PartitionLag>) {
        let mut state = self.state();
        state.changed |= state.lag != lag;
        state.lag = lag;
    }

    /// The charts and tables as they are now (what the next frame shows).
    pub fn fragment(&self) -> String {
        self.state().render()
    }

    /// Draws a frame if anything changed since the last one.
    fn frame(&self) {
        let html = {
            let mut state = self.state();
            if !state.changed {
                return;
            }
            state.changed = false;
            state.sample();
            state.render()
        };
        self.inner.frames.send_replace(Arc::new(html));
    }

    /// The whole page, with the current frame in it.
    fn html(&self) -> String {
        let frame = self.inner.frames.borrow().clone();
        PAGE.replace("{topic}", &escape(&self.inner.topic)).replace("{frame}", &frame)
    }

    /// A router serving the page at `GET /` and its frames at
    /// `GET /events`; it draws frames in a task of its own, every
    /// [`FRAME_EVERY`] while something changes.
    pub fn router(&self) -> Router {
        let drawer = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FRAME_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Ends with the last page and its server.
            while Arc::strong_count(&drawer.inner) > 1 {
                ticks.tick().await;
                drawer.frame();
            }
        });
        let (page, events) = (self.clone(), self.clone());
        Router::new()
            .route("/", get(move || async move { Html(page.html()) }))
            .route("/events", get(move || async move { events.events() }))
    }

    /// The current frame at once, then each new one.
    fn events(&self) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
        info!("{LIVE_PAGE_CONNECTED}");
        let rx = self.inner.frames.subscribe();
        let stream = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
            if !first {
                rx.changed().await.ok()?;
            }
            let frame = rx.borrow_and_update().clone();
            Some((Ok(Event::default().data(frame.as_str())), (rx, false)))
        });
        Sse::new(stream).keep_alive(KeepAlive::default())
    }
}

/// The page: its one script swaps each new frame in and counts them in
/// `<body data-frames>`.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>average_temp: {topic}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .2em .8em; text-align: right; }
tr[data-sensor="overall"] { font-weight: bold; }
#status { color: #666; }
</style></head>
<body data-frames="0">
<h1>average_temp: <code>{topic}</code></h1>
<p id="status">live: updates every half second while readings flow</p>
<main id="live">{frame}</main>
<script>
const live = document.getElementById('live');
const status = document.getElementById('status');
let frames = 0;
const events = new EventSource('events');
events.onmessage = (e) => {
  live.innerHTML = e.data;
  frames += 1;
  document.body.dataset.frames = frames;
  status.textContent = 'live: frame ' + frames + ' at ' + new Date().toLocaleTimeString();
};
events.onerror = () => { status.textContent = 'disconnected; retrying'; };
</script>
</body></html>
"#;
