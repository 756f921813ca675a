-- Portable between SQLite and PostgreSQL: BIGINT everywhere (times are Unix
-- milliseconds, flags are 0/1), ids chosen by the server.
CREATE TABLE accounts (
    id             BIGINT PRIMARY KEY,
    name           TEXT NOT NULL,
    -- Lower-cased name: "Alice" and "alice" are the same account name.
    name_key       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
    -- SHA-256 of the token, hex: a database leak does not leak usable tokens.
    hash        TEXT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked     BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX tokens_by_account ON tokens (account_id);
