-- SQLite checks `resolution IN ('minute', 'hour', 'day')` by building a temporary table of
-- the three values every time a statement writes a row: each of the ~30 trend upserts of a
-- fold paid for one (a tenth of a submission's instructions at a low rate). The same check
-- written as equalities needs none. SQLite cannot alter a CHECK, so both tables are rebuilt:
-- their rows are one per time bucket (and category), not per submission.
CREATE TABLE aggregate_trend_new (
    resolution   TEXT        NOT NULL
        CHECK (resolution = 'minute' OR resolution = 'hour' OR resolution = 'day'),
    bucket_start TEXT        NOT NULL,
    submissions  BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start)
);
INSERT INTO aggregate_trend_new (resolution, bucket_start, submissions)
SELECT resolution, bucket_start, submissions FROM aggregate_trend;
DROP TABLE aggregate_trend;
ALTER TABLE aggregate_trend_new RENAME TO aggregate_trend;

CREATE TABLE aggregate_trend_totals_new (
    resolution     TEXT        NOT NULL
        CHECK (resolution = 'minute' OR resolution = 'hour' OR resolution = 'day'),
    bucket_start   TEXT        NOT NULL,
    category_id    INTEGER     NOT NULL REFERENCES categories (id),
    sum_hundredths BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start, category_id)
);
INSERT INTO aggregate_trend_totals_new (resolution, bucket_start, category_id, sum_hundredths)
SELECT resolution, bucket_start, category_id, sum_hundredths FROM aggregate_trend_totals;
DROP TABLE aggregate_trend_totals;
ALTER TABLE aggregate_trend_totals_new RENAME TO aggregate_trend_totals;
