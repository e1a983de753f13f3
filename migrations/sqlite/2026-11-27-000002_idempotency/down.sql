-- Keys stay hashed (the keys themselves were never kept) and sealed tokens are lost. Fails
-- where two voters now share a key, which the old global uniqueness cannot hold.
-- Rebuilt as in up.sql, with foreign keys off.

CREATE TABLE submissions_old (
    id              TEXT        PRIMARY KEY,
    voter_id        TEXT        NOT NULL REFERENCES voters (id),
    created_at      TEXT        NOT NULL,
    idempotency_key TEXT        UNIQUE
);
INSERT INTO submissions_old (id, voter_id, created_at, idempotency_key)
SELECT id, voter_id, created_at, idempotency_key_hash FROM submissions;

DROP TABLE submissions;
ALTER TABLE submissions_old RENAME TO submissions;
CREATE INDEX submissions_by_voter ON submissions (voter_id, created_at DESC, id DESC);

-- Foreign keys are off while migrating, so check the rebuilt table's references here: a
-- violation fails this insert, and so the whole migration.
CREATE TEMP TABLE foreign_key_violations (n INTEGER NOT NULL CHECK (n = 0));
INSERT INTO foreign_key_violations SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE foreign_key_violations;
