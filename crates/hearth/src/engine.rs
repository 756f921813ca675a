//! Which engine runs a server's built-in world (`[world] engine`): its own
//! lines and wire, or the game API. Clients ask the server's web API once
//! (`/api/schema`) and speak the matching wire.

use hearth_client::world_api::generated as world_api;
use hearth_client::Accounts;

use crate::terminal_text::escaped;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Its own lines and wire (the server serves no game schema).
    Builtin,
    /// The game API: the world's schema, the game wire.
    GameApi,
}

impl Engine {
    /// Asks `accounts`' server. A server whose web API cannot be reached (a
    /// bare gate, a proxy that hides it) is taken to run the built-in
    /// engine, with a warning on standard error; one that runs another game
    /// is an error.
    pub async fn of(accounts: &Accounts, who: &str) -> anyhow::Result<Self> {
        match accounts.game_schema().await {
            Ok(schema) if schema.version() == world_api::VERSION => Ok(Engine::GameApi),
            Ok(schema) => anyhow::bail!(
                "the server runs the game {} (schema {}), not the built-in world: {who} plays only the built-in world",
                escaped(schema.game()),
                schema.version()
            ),
            Err(hearth_client::Error::Api { status: 404, .. }) => Ok(Engine::Builtin),
            Err(error) => {
                eprintln!(
                    "{who}: cannot ask the web API which engine runs the world ({}): using the built-in world's own",
                    escaped(&error.to_string())
                );
                Ok(Engine::Builtin)
            }
        }
    }
}
