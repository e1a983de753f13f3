DROP TABLE aggregate_trend_totals;
DROP TABLE aggregate_trend;
ALTER TABLE aggregate_totals DROP COLUMN sum_squares;
DROP TABLE aggregate_distribution;
