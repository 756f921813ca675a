-- A player's place in the world and game values, saved on logout, on line
-- and zone changes, periodically, and at shutdown; restored on login.
CREATE TABLE players (
    account_id  BIGINT PRIMARY KEY REFERENCES accounts (id),
    zone        TEXT NOT NULL,
    line        BIGINT NOT NULL,
    x           BIGINT NOT NULL,
    y           BIGINT NOT NULL,
    appearance  BIGINT NOT NULL,
    value0      BIGINT NOT NULL,
    value1      BIGINT NOT NULL,
    value2      BIGINT NOT NULL,
    value3      BIGINT NOT NULL,
    saved_at    BIGINT NOT NULL
);
