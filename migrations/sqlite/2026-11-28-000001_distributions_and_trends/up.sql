-- The exact distribution of every category: how many counted submissions gave each non-zero
-- value (in hundredths). How many gave 0 is the summary's total minus these, so a submission
-- without the category counts as 0 here as it does in the averages. Folded in the same
-- transaction as the sums.
CREATE TABLE aggregate_distribution (
    category_id INTEGER NOT NULL REFERENCES categories (id),
    hundredths  INTEGER NOT NULL CHECK (hundredths BETWEEN 1 AND 10000),
    submissions BIGINT  NOT NULL,
    PRIMARY KEY (category_id, hundredths)
);

-- With the sum, the sum of squares gives the variance exactly.
ALTER TABLE aggregate_totals ADD COLUMN sum_squares BIGINT NOT NULL DEFAULT 0;

-- Submissions and sums per time bucket of the submissions' own time (UTC), at three
-- resolutions, so that a trend over any range reads a bounded number of rows. Bucket starts
-- are the fixed-width RFC 3339 text every time here is stored as.
CREATE TABLE aggregate_trend (
    resolution   TEXT        NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start TEXT        NOT NULL,
    submissions  BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start)
);

CREATE TABLE aggregate_trend_totals (
    resolution     TEXT        NOT NULL CHECK (resolution IN ('minute', 'hour', 'day')),
    bucket_start   TEXT        NOT NULL,
    category_id    INTEGER     NOT NULL REFERENCES categories (id),
    sum_hundredths BIGINT      NOT NULL,
    PRIMARY KEY (resolution, bucket_start, category_id)
);

-- What is already folded, as the folds from now on would have written it.
INSERT INTO aggregate_distribution (category_id, hundredths, submissions)
SELECT a.category_id, a.hundredths, count(*)
FROM allocations a LEFT JOIN aggregate_outbox o ON o.submission_id = a.submission_id
WHERE o.id IS NULL AND a.hundredths > 0
GROUP BY a.category_id, a.hundredths;

UPDATE aggregate_totals
   SET sum_squares = coalesce((
       SELECT sum(a.hundredths * a.hundredths)
       FROM allocations a LEFT JOIN aggregate_outbox o ON o.submission_id = a.submission_id
       WHERE o.id IS NULL AND a.category_id = aggregate_totals.category_id), 0);

INSERT INTO aggregate_trend (resolution, bucket_start, submissions)
SELECT r.resolution,
       CASE r.resolution
         WHEN 'minute' THEN substr(s.created_at, 1, 16) || ':00.000000Z'
         WHEN 'hour' THEN substr(s.created_at, 1, 13) || ':00:00.000000Z'
         ELSE substr(s.created_at, 1, 10) || 'T00:00:00.000000Z' END,
       count(*)
FROM submissions s LEFT JOIN aggregate_outbox o ON o.submission_id = s.id
CROSS JOIN (SELECT 'minute' AS resolution UNION ALL SELECT 'hour' UNION ALL SELECT 'day') r
WHERE o.id IS NULL
GROUP BY 1, 2;

INSERT INTO aggregate_trend_totals (resolution, bucket_start, category_id, sum_hundredths)
SELECT r.resolution,
       CASE r.resolution
         WHEN 'minute' THEN substr(s.created_at, 1, 16) || ':00.000000Z'
         WHEN 'hour' THEN substr(s.created_at, 1, 13) || ':00:00.000000Z'
         ELSE substr(s.created_at, 1, 10) || 'T00:00:00.000000Z' END,
       a.category_id, sum(a.hundredths)
FROM submissions s JOIN allocations a ON a.submission_id = s.id
LEFT JOIN aggregate_outbox o ON o.submission_id = s.id
CROSS JOIN (SELECT 'minute' AS resolution UNION ALL SELECT 'hour' UNION ALL SELECT 'day') r
WHERE o.id IS NULL
GROUP BY 1, 2, 3;
