-- Idempotency keys as the payment APIs have them: scoped to a voter, bound to the first
-- request's payload, replaying the first response (the new voter's token included).
--
-- The key itself is no longer kept, only its SHA-256: the voter token a replay returns is
-- sealed under a key derived from the idempotency key, so the database must not hold it.
ALTER TABLE submissions DROP CONSTRAINT submissions_idempotency_key_key;
ALTER TABLE submissions RENAME COLUMN idempotency_key TO idempotency_key_hash;
UPDATE submissions
   SET idempotency_key_hash = encode(sha256(convert_to(idempotency_key_hash, 'UTF8')), 'hex')
 WHERE idempotency_key_hash IS NOT NULL;

ALTER TABLE submissions
    -- SHA-256 of the validated allocation, with the key; NULL before this migration (then the
    -- stored allocations are hashed instead).
    ADD COLUMN payload_hash       TEXT,
    -- This submission created its voter: the call was anonymous, and its key (if any) lives in
    -- the anonymous callers' scope.
    ADD COLUMN created_voter      BOOLEAN NOT NULL DEFAULT FALSE,
    -- The new voter's token, sealed under the idempotency key (salt and ciphertext, hex).
    ADD COLUMN voter_token_sealed TEXT,
    ADD CONSTRAINT sealed_only_for_keyed_new_voters CHECK (
        voter_token_sealed IS NULL OR (created_voter AND idempotency_key_hash IS NOT NULL));

-- A voter and the submission that created it were written with the same timestamp.
UPDATE submissions s
   SET created_voter = TRUE
  FROM voters v
 WHERE v.id = s.voter_id AND v.created_at = s.created_at;

-- A voter's keys are its own; an anonymous caller's key belongs to the voter it created.
CREATE UNIQUE INDEX submissions_key_per_voter ON submissions (voter_id, idempotency_key_hash);
CREATE UNIQUE INDEX submissions_key_of_new_voter ON submissions (idempotency_key_hash)
    WHERE created_voter;
