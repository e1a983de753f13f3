-- Budget categories: seeded here, never deleted (deactivate instead) so history stays whole.
CREATE TABLE categories (
    id            INTEGER PRIMARY KEY,
    slug          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    color         TEXT    NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    display_order INTEGER NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE
);

-- Anonymous voters: only a SHA-256 of the bearer token is kept.
CREATE TABLE voters (
    id         UUID        PRIMARY KEY,
    token_hash TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE submissions (
    id              UUID        PRIMARY KEY,
    voter_id        UUID        NOT NULL REFERENCES voters (id),
    created_at      TIMESTAMPTZ NOT NULL,
    idempotency_key TEXT        UNIQUE
);
CREATE INDEX submissions_by_voter ON submissions (voter_id, created_at DESC, id DESC);

-- Integer hundredths of a percent: sums stay exact.
CREATE TABLE allocations (
    submission_id UUID    NOT NULL REFERENCES submissions (id),
    category_id   INTEGER NOT NULL REFERENCES categories (id),
    hundredths    INTEGER NOT NULL CHECK (hundredths BETWEEN 0 AND 10000),
    PRIMARY KEY (submission_id, category_id)
);

-- One row per submission not yet folded into the summary; written in the submission's
-- transaction and deleted in the fold's, which is what makes the fold exactly-once.
CREATE TABLE aggregate_outbox (
    id            BIGSERIAL   PRIMARY KEY,
    submission_id UUID        NOT NULL UNIQUE REFERENCES submissions (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The summary: running sums per category plus one row for the whole snapshot.
CREATE TABLE aggregate_totals (
    category_id    INTEGER PRIMARY KEY REFERENCES categories (id),
    sum_hundredths BIGINT  NOT NULL,
    allocations    BIGINT  NOT NULL
);

CREATE TABLE aggregate_summary (
    id                SMALLINT    PRIMARY KEY CHECK (id = 1),
    version           BIGINT      NOT NULL,
    total_submissions BIGINT      NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    -- Set while rebuild-aggregates recomputes; readers then go to live SQL.
    stale             BOOLEAN     NOT NULL DEFAULT FALSE
);
INSERT INTO categories (id, slug, name, description, color, display_order) VALUES
  (1, 'healthcare', 'Healthcare', 'Hospitals, public health, medical research funding and health insurance support.', '#e15759', 1),
  (2, 'education', 'Education', 'Schools, universities, teachers, student aid and vocational training.', '#4e79a7', 2),
  (3, 'defense', 'Defense & Military', 'Armed forces, veterans'' services, equipment and national security.', '#79706e', 3),
  (4, 'infrastructure', 'Infrastructure', 'Roads, bridges, public transport, water systems and the power grid.', '#f28e2b', 4),
  (5, 'social-security', 'Social Security', 'Pensions, unemployment benefits, disability support and family allowances.', '#76b7b2', 5),
  (6, 'environment', 'Environment', 'Climate action, conservation, clean energy and pollution control.', '#59a14f', 6),
  (7, 'science', 'Science & Research', 'Basic research, space programs, innovation grants and universities'' labs.', '#b07aa1', 7),
  (8, 'public-safety', 'Public Safety', 'Police, fire services, emergency response and the courts.', '#edc948', 8),
  (9, 'housing', 'Housing & Community', 'Affordable housing, urban renewal, libraries and community centres.', '#ff9da7', 9),
  (10, 'other', 'Other', 'Administration, foreign aid, culture and everything not listed above.', '#9c755f', 10);
