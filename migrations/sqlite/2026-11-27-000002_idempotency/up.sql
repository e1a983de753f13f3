-- Idempotency keys as the payment APIs have them: scoped to a voter, bound to the first
-- request's payload, replaying the first response (the new voter's token included).
--
-- The key itself is no longer kept, only its SHA-256: the voter token a replay returns is
-- sealed under a key derived from the idempotency key, so the database must not hold it.
-- `sha256_hex` is no SQLite function: the store registers it on the connection that migrates
-- (src/store/sqlite.rs), so this file runs through `tax-budget migrate`, not the diesel CLI.
--
-- SQLite cannot drop the old column's UNIQUE constraint, so the table is rebuilt as SQLite's
-- documentation says: create the new table, copy, drop the old one, rename the new one. That
-- needs foreign keys off (the store migrates with them off); `allocations` and
-- `aggregate_outbox` then reference the new table by name.

CREATE TABLE submissions_new (
    id                   TEXT        PRIMARY KEY,
    voter_id             TEXT        NOT NULL REFERENCES voters (id),
    created_at           TEXT        NOT NULL,
    idempotency_key_hash TEXT,
    -- SHA-256 of the validated allocation, with the key; NULL before this migration (then the
    -- stored allocations are hashed instead).
    payload_hash         TEXT,
    -- This submission created its voter: the call was anonymous, and its key (if any) lives in
    -- the anonymous callers' scope.
    created_voter        BOOLEAN     NOT NULL DEFAULT 0,
    -- The new voter's token, sealed under the idempotency key (salt and ciphertext, hex).
    voter_token_sealed   TEXT,
    CONSTRAINT sealed_only_for_keyed_new_voters CHECK (
        voter_token_sealed IS NULL OR (created_voter AND idempotency_key_hash IS NOT NULL))
);

-- A voter and the submission that created it were written with the same timestamp.
INSERT INTO submissions_new (id, voter_id, created_at, idempotency_key_hash, created_voter)
SELECT s.id, s.voter_id, s.created_at,
       CASE WHEN s.idempotency_key IS NOT NULL THEN sha256_hex(s.idempotency_key) END,
       EXISTS (SELECT 1 FROM voters v WHERE v.id = s.voter_id AND v.created_at = s.created_at)
  FROM submissions s;

DROP TABLE submissions;
ALTER TABLE submissions_new RENAME TO submissions;

CREATE INDEX submissions_by_voter ON submissions (voter_id, created_at DESC, id DESC);
-- A voter's keys are its own; an anonymous caller's key belongs to the voter it created.
CREATE UNIQUE INDEX submissions_key_per_voter ON submissions (voter_id, idempotency_key_hash);
CREATE UNIQUE INDEX submissions_key_of_new_voter ON submissions (idempotency_key_hash)
    WHERE created_voter;

-- Foreign keys are off while migrating, so check the rebuilt table's references here: a
-- violation fails this insert, and so the whole migration.
CREATE TEMP TABLE foreign_key_violations (n INTEGER NOT NULL CHECK (n = 0));
INSERT INTO foreign_key_violations SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE foreign_key_violations;
