-- Roles: 'player' (everyone) or 'admin' (the /admin dashboard and its API).
-- disabled = 1: an administrator locked the account; no password or token
-- logs it in until it is unlocked.
ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'player';
ALTER TABLE accounts ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
