//! The terminal client and the bots play the built-in world: they ask the
//! server's web API which game it runs (`/api/schema`) before logging in,
//! so that a server of another game, or another version of the world, is
//! refused with why rather than with a closed session.

use hearth_client::world::generated;
use hearth_client::Accounts;

use crate::terminal_text::escaped;

/// Fails if `accounts`' server runs another game or another version of the
/// world. A server whose web API cannot be reached (a bare gate, a proxy
/// that hides it) is let through with a warning on standard error: the
/// login names the schema version, and such a server refuses it with why.
pub async fn ensure_world(accounts: &Accounts, who: &str) -> anyhow::Result<()> {
    match accounts.game_schema().await {
        Ok(schema) if schema.version() == generated::VERSION => Ok(()),
        Ok(schema) if schema.game() == generated::schema().game() => anyhow::bail!(
            "the server runs another version of the built-in world (schema {}, {who} knows {}): use the hearth of the server's version",
            schema.version(),
            generated::VERSION
        ),
        Ok(schema) => anyhow::bail!(
            "the server runs the game {} (schema {}), not the built-in world: {who} plays only the built-in world",
            escaped(schema.game()),
            schema.version()
        ),
        Err(error) => {
            eprintln!(
                "{who}: cannot ask the web API which game the server runs ({}): logging in anyway",
                escaped(&error.to_string())
            );
            Ok(())
        }
    }
}
