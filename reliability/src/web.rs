//! The apps' web side as a person (or Prometheus) sees it: a plain HTTP
//! GET, the address an app says it serves on, and a page as headless
//! Chromium renders it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use scenarios::Binaries;
use twitch::{KafkaCluster, TopicConfiguration};

use crate::{binaries, brokers, unique, wait_until, App};

/// `average_temp` serving something over HTTP, on a fresh topic.
#[derive(Debug)]
pub struct Serving {
    /// The broker.
    pub brokers: String,
    /// The apps.
    pub bins: Binaries,
    /// The topic, with 3 partitions.
    pub topic: String,
    /// `average_temp`, holding the 3 partitions.
    pub consumer: App,
    /// Where it serves.
    pub addr: String,
}

/// Creates a 3-partition topic and starts `average_temp --topic T FLAG
/// 127.0.0.1:0 --no-dead-letter` on it; returns once it serves `what` (as
/// its log says) and holds the 3 partitions.
pub async fn serving_consumer(prefix: &str, flag: &str, what: &str) -> Result<Serving> {
    let (brokers, bins) = (brokers()?, binaries()?);
    let cluster = KafkaCluster::builder(&brokers).client_id(prefix).build()?;
    cluster.wait_for_brokers().await?;
    let topic = unique(prefix);
    cluster.create_topics(&[TopicConfiguration::new(&topic, 3)]).await?;
    let args = ["--topic", &topic, flag, "127.0.0.1:0", "--no-dead-letter"];
    let mut consumer = App::spawn("average_temp", &bins.average_temp, &args, &brokers)?;
    let addr = served_addr(&mut consumer, what).await?;
    wait_until("average_temp to be assigned the 3 partitions", Duration::from_secs(45), || {
        consumer.check_running()?;
        Ok(consumer.assignment().is_some_and(|a| a.len() == 3))
    })
    .await?;
    Ok(Serving { brokers, bins, topic, consumer, addr })
}

/// The body of `GET http://addr/path`, which must answer 200.
pub async fn http_get(addr: &str, path: &str) -> Result<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, anyhow::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), fetch).await.context("GET timed out")??;
    let (head, body) = response.split_once("\r\n\r\n").context("no end of the headers")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {}", head.lines().next().unwrap_or_default());
    Ok(body.to_owned())
}

/// The value of an unlabelled metric, or the sum over every series of a
/// labelled one, in a Prometheus text exposition; `None` when absent.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| *series == name || series.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Each series of a labelled metric: `(labels, value)`.
pub fn metric_series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(labels, v)| Some((labels.trim_end_matches('}').to_owned(), v.parse().ok()?)))
        .collect()
}

/// Waits for an app's `<what> on http://ADDR/...` log line and returns ADDR
/// (the apps take port 0 and say which port they got).
pub async fn served_addr(app: &mut App, what: &str) -> Result<String> {
    let mut addr = None;
    wait_until(&format!("{} to serve {what}", app.name()), Duration::from_secs(60), || {
        app.check_running()?;
        addr = app
            .stderr()
            .iter()
            .filter_map(|l| l.split(&format!("{what} on http://")).nth(1))
            .filter_map(|rest| rest.split('/').next())
            .next()
            .map(str::to_owned);
        Ok(addr.is_some())
    })
    .await?;
    addr.context("an address")
}

/// Headless Chromium (Debian's `chromium`), with a fresh profile.
#[derive(Debug)]
pub struct Browser {
    program: PathBuf,
    profile: PathBuf,
}

impl Browser {
    /// Finds `chromium` (or `$CHROMIUM`) on the PATH.
    pub fn find() -> Result<Browser> {
        let program = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "chromium".into());
        let found = std::process::Command::new(&program).arg("--version").stdout(Stdio::null()).status();
        if !found.is_ok_and(|s| s.success()) {
            bail!("{} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does)", program.display());
        }
        let profile = std::env::temp_dir().join(unique("twitch-chromium"));
        Ok(Browser { program, profile })
    }

    fn command(&self, url: &str, output: &[String]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1000,1100"])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args(output)
            .arg(url)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Opens `url` and dumps its DOM once the page's connections end and
    /// its scripts settle: start it, end the server's event stream, then
    /// [`Dump::dom`].
    pub fn open_and_dump(&self, url: &str) -> Result<Dump> {
        let child = self
            .command(url, &["--virtual-time-budget=5000".to_owned(), "--dump-dom".to_owned()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting chromium")?;
        Ok(Dump { child })
    }

    /// A screenshot of `url` as it is after about `after` (the page stays
    /// connected; the browser stops loading then).
    pub async fn screenshot(&self, url: &str, after: Duration, to: &Path) -> Result<()> {
        let args = [format!("--timeout={}", after.as_millis()), format!("--screenshot={}", to.display())];
        let status = tokio::time::timeout(Duration::from_secs(60), self.command(url, &args).stdout(Stdio::null()).status())
            .await
            .context("chromium took over a minute for a screenshot")??;
        ensure!(status.success() && to.exists(), "chromium --screenshot failed ({status})");
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A page open in headless Chromium, to be dumped.
#[derive(Debug)]
pub struct Dump {
    child: Child,
}

impl Dump {
    /// Waits (up to `timeout`) for Chromium to dump the DOM and returns it.
    pub async fn dom(self, timeout: Duration) -> Result<String> {
        let out = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .with_context(|| format!("chromium did not dump the page within {timeout:?}"))??;
        ensure!(out.status.success(), "chromium --dump-dom failed ({})", out.status);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
