//! The database: a pool of connections whose `search_path` is the sink's
//! schema, and the statements the sink runs.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::batch::{classify, Claim, Row, Verdict};
use crate::{chain, migrate, SinkError};

/// Connections kept: one writes, the others serve rebalances and reports.
const POOL_SIZE: usize = 4;

/// Makes sure each assigned partition has a row, and bumps its epoch: from
/// now on, rows read under an earlier assignment are refused. Waits for a
/// transaction still writing the partition (its row lock).
const CLAIM: &str = "\
INSERT INTO consumed_offsets (topic, kafka_partition) SELECT $1, p FROM unnest($2::int[]) AS p ON CONFLICT DO NOTHING;";
const BUMP: &str = "\
UPDATE consumed_offsets SET epoch = epoch + 1, updated_at = now() \
WHERE topic = $1 AND kafka_partition = ANY($2) RETURNING kafka_partition, next_offset, epoch";

/// Locks the batch's partitions (in order, so writers never deadlock).
const LOCK: &str = "\
SELECT kafka_partition, next_offset, epoch FROM consumed_offsets \
WHERE topic = $1 AND kafka_partition = ANY($2) ORDER BY kafka_partition FOR UPDATE";

/// Inserts the rows (a reading already there is skipped and counted as a
/// duplicate), folds the inserted ones into the sensors' averages and moves
/// the partitions' next offsets: one statement, returning how many rows
/// were inserted.
const WRITE: &str = "\
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::bigint[], $6::int[], $7::bigint[])
        AS t(sensor, seq, celsius, measured_ms, kafka_partition, kafka_offset)
), inserted AS (
    INSERT INTO readings (sensor, seq, celsius, measured_at, topic, kafka_partition, kafka_offset)
    SELECT sensor, seq, celsius, to_timestamp(measured_ms::float8 / 1000), $1, kafka_partition, kafka_offset FROM input
    ON CONFLICT (sensor, seq) DO NOTHING
    RETURNING sensor, celsius, kafka_partition
), averaged AS (
    INSERT INTO sensor_averages AS a (sensor, readings, average)
    SELECT sensor, count(*), avg(celsius) FROM inserted GROUP BY sensor
    ON CONFLICT (sensor) DO UPDATE SET
        readings = a.readings + excluded.readings,
        average = a.average + (excluded.average - a.average) * excluded.readings / (a.readings + excluded.readings),
        updated_at = now()
), moved AS (
    UPDATE consumed_offsets o SET
        next_offset = i.next_offset,
        duplicates = o.duplicates + i.rows
            - (SELECT count(*) FROM inserted WHERE inserted.kafka_partition = i.kafka_partition),
        updated_at = now()
    FROM (SELECT kafka_partition, max(kafka_offset) + 1 AS next_offset, count(*) AS rows
          FROM input GROUP BY kafka_partition) AS i
    WHERE o.topic = $1 AND o.kafka_partition = i.kafka_partition
)
SELECT count(*) FROM inserted";

/// What one [`Store::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The verdict on each row, in order.
    pub verdicts: Vec<Verdict>,
    /// Rows inserted; the other `Write` rows were duplicates.
    pub inserted: u64,
}

impl Written {
    /// Rows with this verdict.
    pub fn count(&self, verdict: Verdict) -> u64 {
        self.verdicts.iter().filter(|v| **v == verdict).count() as u64
    }
}

/// One sensor's row in `sensor_averages`.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorAverage {
    /// Sensor id.
    pub sensor: String,
    /// Readings counted.
    pub readings: i64,
    /// Their average.
    pub average: f64,
}

/// What the database holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Per sensor, by id.
    pub sensors: Vec<SensorAverage>,
    /// Rows in `readings`.
    pub rows: i64,
    /// The overall average (`overall_average`), if any reading landed.
    pub overall: Option<f64>,
    /// Records skipped because their (sensor, seq) was already there.
    pub duplicates: i64,
}

/// The sink's database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    target: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("target", &self.target).finish_non_exhaustive()
    }
}

/// Whether `name` is a plain lowercase identifier.
fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// `host:port/dbname` of a config, for messages (never the password).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default database)"))
}

impl Store {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), within
    /// `timeout`, and creates or updates the tables in `schema`.
    pub async fn connect(url: &str, schema: &str, timeout: Duration) -> Result<Store, SinkError> {
        if !valid_schema(schema) {
            return Err(SinkError::Schema(schema.to_owned()));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(SinkError::Url)?;
        let options = format!("{} -c search_path={schema} -c client_min_messages=warning", config.get_options().unwrap_or_default());
        config.options(options.trim_start()).connect_timeout(timeout).application_name("temp_sink");
        let target = describe(&config);
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(timeout))
            .wait_timeout(Some(timeout))
            .build()
            .map_err(|e| SinkError::Connect { target: target.clone(), cause: e.to_string() })?;
        let store = Store { pool, target };
        let mut client = store.client().await?;
        migrate::migrate(&mut client, schema).await?;
        Ok(store)
    }

    /// `host:port/dbname`.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn client(&self) -> Result<Object, SinkError> {
        self.pool.get().await.map_err(|e| {
            let cause = match e {
                PoolError::Backend(e) => chain(&e),
                PoolError::Timeout(_) => "no connection within the timeout".to_owned(),
                other => chain(&other),
            };
            SinkError::Connect { target: self.target.clone(), cause }
        })
    }

    /// Claims `partitions` of `topic` for a new assignment: where each
    /// resumes, and the epoch its rows must carry.
    pub async fn claim(&self, topic: &str, partitions: &[i32]) -> Result<Vec<Claim>, SinkError> {
        let db = |what| move |source| SinkError::Db { what, source };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("starting a claim"))?;
        tx.execute(CLAIM, &[&topic, &partitions]).await.map_err(db("adding offset rows"))?;
        let rows = tx.query(BUMP, &[&topic, &partitions]).await.map_err(db("claiming partitions"))?;
        tx.commit().await.map_err(db("committing a claim"))?;
        Ok(rows.iter().map(|r| Claim { partition: r.get(0), next_offset: r.get(1), epoch: r.get(2) }).collect())
    }

    /// Writes a batch in one transaction: the rows that are still this
    /// member's and not yet in the database, the averages, the offsets.
    pub async fn write(&self, topic: &str, rows: &[Row]) -> Result<Written, SinkError> {
        let db = |what| move |source| SinkError::Db { what, source };
        let mut partitions: Vec<i32> = rows.iter().map(|r| r.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("starting a batch"))?;
        let lock = tx.prepare_cached(LOCK).await.map_err(db("preparing the lock"))?;
        let claims: Vec<Claim> = tx
            .query(&lock, &[&topic, &partitions])
            .await
            .map_err(db("locking the partitions' offsets"))?
            .iter()
            .map(|r| Claim { partition: r.get(0), next_offset: r.get(1), epoch: r.get(2) })
            .collect();
        let verdicts = classify(rows, &claims);
        let write: Vec<&Row> = rows.iter().zip(&verdicts).filter(|(_, v)| **v == Verdict::Write).map(|(r, _)| r).collect();
        let mut inserted = 0;
        if !write.is_empty() {
            let sensors: Vec<&str> = write.iter().map(|r| r.sensor.as_str()).collect();
            let seqs: Vec<i64> = write.iter().map(|r| r.seq).collect();
            let celsius: Vec<f64> = write.iter().map(|r| r.celsius).collect();
            let measured: Vec<i64> = write.iter().map(|r| r.measured_ms).collect();
            let parts: Vec<i32> = write.iter().map(|r| r.partition).collect();
            let offsets: Vec<i64> = write.iter().map(|r| r.offset).collect();
            let statement = tx.prepare_cached(WRITE).await.map_err(db("preparing the batch insert"))?;
            let row = tx
                .query_one(&statement, &[&topic, &sensors, &seqs, &celsius, &measured, &parts, &offsets])
                .await
                .map_err(db("writing a batch"))?;
            inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or_default();
        }
        tx.commit().await.map_err(db("committing a batch"))?;
        Ok(Written { verdicts, inserted })
    }

    /// What the database holds: per-sensor counts and averages, rows, the
    /// overall average and the duplicates skipped.
    pub async fn report(&self) -> Result<Report, SinkError> {
        let db = |what| move |source| SinkError::Db { what, source };
        let client = self.client().await?;
        let sensors = client
            .query("SELECT sensor, readings, average FROM sensor_averages ORDER BY sensor", &[])
            .await
            .map_err(db("reading the averages"))?
            .iter()
            .map(|r| SensorAverage { sensor: r.get(0), readings: r.get(1), average: r.get(2) })
            .collect();
        let totals = client
            .query_one(
                "SELECT (SELECT count(*) FROM readings), (SELECT average FROM overall_average), \
                 (SELECT coalesce(sum(duplicates), 0)::bigint FROM consumed_offsets)",
                &[],
            )
            .await
            .map_err(db("reading the totals"))?;
        Ok(Report { sensors, rows: totals.get(0), overall: totals.get(1), duplicates: totals.get(2) })
    }

    /// Per sensor, the count and average computed afresh from `readings`,
    /// to check `sensor_averages` against.
    pub async fn recount(&self) -> Result<Vec<SensorAverage>, SinkError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT sensor, count(*), avg(celsius) FROM readings GROUP BY sensor ORDER BY sensor", &[])
            .await
            .map_err(|source| SinkError::Db { what: "recounting the readings", source })?;
        Ok(rows.iter().map(|r| SensorAverage { sensor: r.get(0), readings: r.get(1), average: r.get(2) }).collect())
    }

    /// Per partition of `topic`, the next offset stored.
    pub async fn offsets(&self, topic: &str) -> Result<Vec<(i32, Option<i64>)>, SinkError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT kafka_partition, next_offset FROM consumed_offsets WHERE topic = $1 ORDER BY 1", &[&topic])
            .await
            .map_err(|source| SinkError::Db { what: "reading the offsets", source })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every (sensor, seq) in `readings`, for checks.
    pub async fn keys(&self) -> Result<Vec<(String, i64)>, SinkError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT sensor, seq FROM readings ORDER BY sensor, seq", &[])
            .await
            .map_err(|source| SinkError::Db { what: "reading the readings", source })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["temps", "_x", "t_1", "a"] {
            assert!(valid_schema(ok), "{ok}");
        }
        for bad in ["", "1a", "Temps", "a-b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }

    #[test]
    fn targets_name_no_password() {
        let config: tokio_postgres::Config = "postgres://u:secret@db.example:6543/readings".parse().unwrap();
        assert_eq!(describe(&config), "db.example:6543/readings");
    }
}
