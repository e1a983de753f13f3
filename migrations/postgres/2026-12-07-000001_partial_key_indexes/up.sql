-- Only submissions sent with an idempotency key need its unique indexes: a unique index
-- admits any number of NULLs, so a row without a key never conflicts in them. Indexing those
-- rows too (most submissions) cost two index entries per submission, written on every
-- commit and kept for good (tens of megabytes per million submissions). A lookup by key
-- (`idempotency_key_hash = $1`) implies the key is not NULL, so it still uses them.
-- Rebuilding them reads the whole table once and holds writes back meanwhile: seconds per
-- million submissions.
DROP INDEX submissions_key_per_voter;
CREATE UNIQUE INDEX submissions_key_per_voter ON submissions (voter_id, idempotency_key_hash)
    WHERE idempotency_key_hash IS NOT NULL;
DROP INDEX submissions_key_of_new_voter;
CREATE UNIQUE INDEX submissions_key_of_new_voter ON submissions (idempotency_key_hash)
    WHERE created_voter AND idempotency_key_hash IS NOT NULL;
