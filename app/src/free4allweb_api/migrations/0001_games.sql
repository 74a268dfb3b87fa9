-- Teams, games and their scores. Expand-only: later releases add, never drop, in one release.
CREATE TABLE IF NOT EXISTS teams (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS games (
    id          bigserial PRIMARY KEY,
    home_team   text NOT NULL,
    away_team   text NOT NULL,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    home_score  integer NOT NULL DEFAULT 0 CHECK (home_score >= 0),
    away_score  integer NOT NULL DEFAULT 0 CHECK (away_score >= 0),
    status      text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'live', 'final')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS games_starts_at_idx ON games (starts_at DESC);
