-- Keys stay hashed (the keys themselves were never kept) and sealed tokens are lost. Fails
-- where two voters now share a key, which the old global uniqueness cannot hold.
DROP INDEX submissions_key_of_new_voter;
DROP INDEX submissions_key_per_voter;
ALTER TABLE submissions
    DROP CONSTRAINT sealed_only_for_keyed_new_voters,
    DROP COLUMN voter_token_sealed,
    DROP COLUMN created_voter,
    DROP COLUMN payload_hash;
ALTER TABLE submissions RENAME COLUMN idempotency_key_hash TO idempotency_key;
ALTER TABLE submissions ADD CONSTRAINT submissions_idempotency_key_key UNIQUE (idempotency_key);
