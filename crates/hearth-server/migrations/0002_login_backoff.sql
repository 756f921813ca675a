-- The length of the account's last lock in milliseconds (0: none since the
-- last successful login): each further lock doubles it, up to a cap, so
-- guessing slows down exponentially while an owner is never locked long.
ALTER TABLE accounts ADD COLUMN lock_ms BIGINT NOT NULL DEFAULT 0;
