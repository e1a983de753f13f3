ALTER TABLE aggregate_summary DROP COLUMN generation;
