//! The schema: created on first start from `migrations/`, one transaction
//! for all that are missing, under an advisory lock so that members starting
//! together do not race.

use tokio_postgres::Client;
use tracing::info;

use crate::SinkError;

/// Every migration, in order: version, file name, SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "0001_readings.sql", include_str!("../migrations/0001_readings.sql"))];

/// Creates `schema` and applies the migrations it lacks. The connection's
/// `search_path` is the schema, so the migrations name no schema.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), SinkError> {
    let db = |what| move |source| SinkError::Db { what, source };
    let tx = client.transaction().await.map_err(db("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('temp_sink migrations ' || $1))", &[&schema])
        .await
        .map_err(db("locking the schema for migration"))?;
    // The name is checked to be a plain identifier (Store::connect).
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.temp_sink_migrations ( \
             version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(db("creating the schema"))?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM temp_sink_migrations", &[])
        .await
        .map_err(db("reading the applied migrations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| !applied.contains(v)) {
        let failed = |source| SinkError::Migration { version, name, source };
        tx.batch_execute(sql).await.map_err(failed)?;
        tx.execute("INSERT INTO temp_sink_migrations (version, name) VALUES ($1, $2)", &[&version, &name])
            .await
            .map_err(failed)?;
        info!(schema, version, name, "applied migration");
    }
    tx.commit().await.map_err(db("committing the migrations"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_numbered_in_order_and_named_by_their_number() {
        for (i, (version, name, sql)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i32 + 1);
            assert!(name.starts_with(&format!("{version:04}_")), "{name}");
            assert!(!sql.trim().is_empty());
        }
    }
}
