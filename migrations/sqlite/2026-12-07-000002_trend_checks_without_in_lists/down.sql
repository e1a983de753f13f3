CREATE TABLE aggregate_trend_old (
    resolution   TEXT        NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start TEXT        NOT NULL,
    submissions  BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start)
);
INSERT INTO aggregate_trend_old (resolution, bucket_start, submissions)
SELECT resolution, bucket_start, submissions FROM aggregate_trend;
DROP TABLE aggregate_trend;
ALTER TABLE aggregate_trend_old RENAME TO aggregate_trend;

CREATE TABLE aggregate_trend_totals_old (
    resolution     TEXT        NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start   TEXT        NOT NULL,
    category_id    INTEGER     NOT NULL REFERENCES categories (id),
    sum_hundredths BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start, category_id)
);
INSERT INTO aggregate_trend_totals_old (resolution, bucket_start, category_id, sum_hundredths)
SELECT resolution, bucket_start, category_id, sum_hundredths FROM aggregate_trend_totals;
DROP TABLE aggregate_trend_totals;
ALTER TABLE aggregate_trend_totals_old RENAME TO aggregate_trend_totals;
