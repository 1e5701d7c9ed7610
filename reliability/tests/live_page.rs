//! The live page, as a person sees it: `average_temp --http` while
//! `temp_gen` writes, the page open in headless Chromium the whole time.
//! Once every reading is consumed, the page must show a line and a row for
//! every sensor and for the overall average, with the very numbers
//! `average_temp` prints: its per-sensor averages on its last reading line
//! of each sensor, and its summary line on exit. The page must have been
//! redrawn by itself (server-sent events) while readings flowed.
//!
//! A screenshot lands in `target/tmp/live-page.png`. Needs `KAFKA_BROKERS`
//! and Debian's `chromium`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use monitor::page::{FRAME_EVERY, LIVE_PAGE_CONNECTED};
use reliability::web::{http_get, serving_consumer, Browser, Serving};
use reliability::{wait_until, App};
use temps::{ConsumerSummary, ProducerSummary};

/// Readings, over three sensors: about 6 s.
const READINGS: u64 = 1_500;
const INTERVAL: &str = "4ms";

/// The start of the page's lag row for partition `p`.
fn lag_row(p: i32) -> String {
    format!("<tr data-partition=\"{p}\">")
}

/// The rows of the page's table: sensor -> (readings, average).
fn page_rows(dom: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    for row in dom.split("<tr data-sensor=\"").skip(1) {
        let Some((sensor, rest)) = row.split_once('"') else { continue };
        let cell = |class: &str| {
            rest.split(&format!("<td class=\"{class}\">")).nth(1).and_then(|c| c.split('<').next()).map(str::to_owned)
        };
        if let (Some(count), Some(average)) = (cell("count"), cell("average")) {
            rows.insert(sensor.to_owned(), (count, average));
        }
    }
    rows
}

/// The last `sensor avg X (n=N)` average_temp printed for each sensor.
fn printed_averages(lines: &[reliability::Line]) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for line in lines {
        let text = &line.text;
        let (Some(sensor), Some(avg)) = (text.split_whitespace().next(), text.split("sensor avg ").nth(1)) else { continue };
        let Some((mean, rest)) = avg.split_once(" (n=") else { continue };
        let Some(count) = rest.split(')').next() else { continue };
        out.insert(sensor.to_owned(), (count.to_owned(), mean.to_owned()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_the_averages_average_temp_prints() -> Result<()> {
    let browser = Browser::find()?;
    let Serving { brokers, bins, topic, mut consumer, addr } =
        serving_consumer("live-page", "--http", "the live page").await?;
    let url = format!("http://{addr}/");

    // The page is open from before the first reading to after the last.
    let dump = browser.open_and_dump(&url)?;
    wait_until("the page to listen for frames", Duration::from_secs(60), || {
        Ok(consumer.stderr().iter().any(|l| l.contains(LIVE_PAGE_CONNECTED)))
    })
    .await?;
    let count = READINGS.to_string();
    let args = ["--topic", &topic, "--count", &count, "--interval", INTERVAL, "--seed", "11"];
    let producer = App::spawn("temp_gen", &bins.temp_gen, &args, &brokers)?.finish(Duration::from_secs(120)).await?;
    ensure!(producer.status.success(), "temp_gen failed:\n{}", producer.stderr_tail(15));
    let produced: ProducerSummary = producer.last_line().unwrap_or_default().parse()?;
    ensure!(produced.produced == READINGS);
    wait_until("average_temp to consume every reading", Duration::from_secs(60), || {
        consumer.check_running()?;
        Ok(consumer.reading_count() as u64 >= READINGS)
    })
    .await?;
    // The lag is looked up every second, from the broker, which may take a
    // few tries on a loaded machine: wait until the page has a row for each
    // partition before stopping average_temp.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        consumer.check_running()?;
        let page = http_get(&addr, "/").await?;
        if (0..3).all(|p| page.contains(&lag_row(p))) {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "the page shows no lag row for some partition after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The last readings are drawn within a frame.
    tokio::time::sleep(FRAME_EVERY * 3).await;
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page.png");
    Browser::find()?.screenshot(&url, Duration::from_secs(2), &shot).await?;

    // Stopping average_temp ends the event stream: the browser dumps the page.
    consumer.terminate()?;
    let finished = consumer.finish(Duration::from_secs(60)).await?;
    finished.check_stopped()?;
    let summary: ConsumerSummary = finished.last_line().unwrap_or_default().parse()?;
    let dom = dump.dom(Duration::from_secs(90)).await?;

    let frames: u64 = dom
        .split("data-frames=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .context("the page counts its frames")?;
    ensure!(frames >= 2, "the page was redrawn {frames} time(s) while readings flowed");
    let rows = page_rows(&dom);
    let mut expected = printed_averages(&finished.stdout);
    let average = summary.average.map(|a| format!("{a:.6}")).unwrap_or_default();
    expected.insert("overall".into(), (summary.consumed.to_string(), average));
    ensure!(summary.consumed == READINGS, "average_temp consumed {} of {READINGS}", summary.consumed);
    ensure!(expected.len() == 4, "three sensors and the overall average: {expected:?}");
    ensure!(rows == expected, "the page shows {rows:?}\nbut average_temp printed {expected:?}");
    for sensor in expected.keys() {
        ensure!(dom.contains(&format!("<polyline data-series=\"{sensor}\"")), "no line for {sensor} on the chart");
    }
    for p in 0..3 {
        ensure!(dom.contains(&lag_row(p)), "no lag row for partition {p}");
    }
    eprintln!("page: {rows:?}, {frames} frames, screenshot {}", shot.display());
    Ok(())
}
