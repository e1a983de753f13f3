DROP TABLE aggregate_summary;
DROP TABLE aggregate_totals;
DROP TABLE aggregate_outbox;
DROP TABLE allocations;
DROP TABLE submissions;
DROP TABLE voters;
DROP TABLE categories;
