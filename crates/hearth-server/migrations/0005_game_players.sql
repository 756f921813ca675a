-- Each player's data of a game on the game API (hearth-game's `Game::Player`,
-- serialized as JSON by the game line): loaded at login, saved when the
-- player leaves and periodically while it changes.
CREATE TABLE game_players (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    game        TEXT NOT NULL,
    data        TEXT NOT NULL,
    saved_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, game)
);
