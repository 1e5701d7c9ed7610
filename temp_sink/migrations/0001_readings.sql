-- Readings as they landed: each (sensor, seq) once.
CREATE TABLE readings (
    sensor          text             NOT NULL,
    seq             bigint           NOT NULL,
    celsius         double precision NOT NULL,
    measured_at     timestamptz      NOT NULL,
    topic           text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    PRIMARY KEY (sensor, seq)
);

-- The running average of each sensor over its rows in `readings`, updated in
-- the transaction that inserts them.
CREATE TABLE sensor_averages (
    sensor     text             PRIMARY KEY,
    readings   bigint           NOT NULL,
    average    double precision NOT NULL,
    updated_at timestamptz      NOT NULL DEFAULT now()
);

-- The average over every sensor.
CREATE VIEW overall_average AS
SELECT coalesce(sum(readings), 0)::bigint AS readings,
       sum(average * readings) / nullif(sum(readings), 0) AS average
FROM sensor_averages;

-- Where reading resumes: per partition, the offset after the last record
-- written, updated in the same transaction as the rows.
CREATE TABLE consumed_offsets (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    -- NULL until a first record is written: start at the beginning.
    next_offset     bigint,
    -- Bumped on each assignment: a member still writing for an assignment
    -- it lost no longer matches, and its rows are refused.
    epoch           bigint      NOT NULL DEFAULT 0,
    -- Records whose (sensor, seq) was already in `readings` (the producer
    -- wrote it twice): skipped, not counted.
    duplicates      bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
