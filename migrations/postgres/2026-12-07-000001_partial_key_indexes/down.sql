DROP INDEX submissions_key_per_voter;
CREATE UNIQUE INDEX submissions_key_per_voter ON submissions (voter_id, idempotency_key_hash);
DROP INDEX submissions_key_of_new_voter;
CREATE UNIQUE INDEX submissions_key_of_new_voter ON submissions (idempotency_key_hash)
    WHERE created_voter;
