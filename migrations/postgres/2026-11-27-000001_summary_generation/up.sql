-- Which summary a snapshot belongs to: set when the summary row is created and renewed by every
-- rebuild. Caches and processes compare it, so that a snapshot of a recreated or restored
-- database (whose versions start again lower) is not mistaken for an old one of this.
ALTER TABLE aggregate_summary ADD COLUMN generation TEXT NOT NULL DEFAULT '';
UPDATE aggregate_summary SET generation = md5(random()::text || clock_timestamp()::text);
