//! A PostgreSQL of a test's own, run with `scripts/postgres.sh` (fresh data
//! directory, its own port), that the test can stop and start again; stopped
//! and deleted when dropped, even on failure. And the `temp_sink` binary.

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use temp_sink::Store;

/// A PostgreSQL on `127.0.0.1:port`, started by [`Postgres::start`].
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    running: bool,
}

fn script() -> PathBuf {
    crate::script("postgres.sh")
}

async fn postgres_sh(args: &[&str]) -> Result<Output> {
    let out = crate::run_script("postgres.sh", args).await?;
    if !out.status.success() {
        bail!(
            "scripts/postgres.sh {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out)
}

impl Postgres {
    /// Starts a fresh PostgreSQL on `127.0.0.1:port`. One that an earlier,
    /// interrupted run of the test left on the port is removed first.
    pub async fn start(port: u16) -> Result<Postgres> {
        let p = port.to_string();
        postgres_sh(&["stop", "--port", &p]).await?;
        let mut pg = Postgres { port, running: false };
        pg.start_again().await?;
        Ok(pg)
    }

    /// Its URL: `postgres://postgres@127.0.0.1:port/postgres`.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the empty database `name` (a plain lowercase identifier,
    /// such as one from [`unique_schema`]) and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let plain = !name.is_empty()
            && name.len() < 64
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            bail!("`{name}` is not a plain lowercase identifier");
        }
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .context("connecting to the test's PostgreSQL")?;
        let connection = tokio::spawn(connection);
        let created = client.batch_execute(&format!("CREATE DATABASE {name}")).await;
        drop(client);
        // The connection ends with the client; its own error adds nothing.
        let _ = connection.await;
        created.with_context(|| format!("creating the database {name}"))?;
        Ok(self.database_url(name))
    }

    /// Starts it again, on the same data, after [`Postgres::stop`].
    pub async fn start_again(&mut self) -> Result<()> {
        postgres_sh(&["start", "--port", &self.port.to_string()]).await?;
        self.running = true;
        Ok(())
    }

    /// Stops it (fast shutdown: connections are cut), keeping the data.
    pub async fn stop(&mut self) -> Result<()> {
        postgres_sh(&["stop", "--keep", "--port", &self.port.to_string()]).await?;
        self.running = false;
        Ok(())
    }

    /// The sink's tables in `schema` of this database, created if missing.
    pub async fn store(&self, schema: &str) -> Result<Store> {
        Store::connect(&self.url(), schema, Duration::from_secs(10)).await.context("connecting to the test's PostgreSQL")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Blocking, but short: a fast shutdown and removing the data.
        let _ = std::process::Command::new("bash")
            .arg(script())
            .args(["stop", "--port", &self.port.to_string()])
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// The `temp_sink` binary, built once per test binary.
pub fn sink_binary() -> Result<PathBuf> {
    static SINK: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SINK.get_or_init(|| {
        scenarios::build_executables(&["temp_sink"])
            .map_err(|e| e.to_string())
            .and_then(|mut exes| exes.remove("temp_sink").ok_or_else(|| "no temp_sink executable".to_owned()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
    .context("building temp_sink")
}

/// A schema name of a test's own, from [`unique`](crate::unique):
/// lowercase, `_` for `-`.
pub fn unique_schema(prefix: &str) -> String {
    crate::unique(prefix).replace('-', "_").to_lowercase()
}
