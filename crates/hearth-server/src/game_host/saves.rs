//! Players' data of a game on the game API: read at login, written by the
//! game host as its lines hand it over.

use sqlx::Row;

use crate::storage::Storage;

/// Largest player data Hearth stores for a game (the game's `Player`,
/// serialized): a game that keeps more per player should keep it in its
/// own tables.
pub const MAX_PLAYER_DATA: usize = 64 * 1024;

pub async fn load(
    storage: &Storage,
    account: i64,
    game: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row = sqlx::query("SELECT data FROM game_players WHERE account_id = $1 AND game = $2")
        .bind(account)
        .bind(game)
        .fetch_optional(&storage.pool)
        .await?;
    Ok(row.map(|row| row.get::<String, _>(0).into_bytes()))
}

// INSERT ... SELECT ... WHERE EXISTS: the last save of a player whose
// account was just deleted finds no account and writes nothing.
const UPSERT: &str = "INSERT INTO game_players (account_id, game, data, saved_at) \
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $1) \
     ON CONFLICT (account_id, game) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at";

/// Why a save was not written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the player's data is {0} bytes, above the {MAX_PLAYER_DATA} Hearth stores")]
    TooLarge(usize),
    #[error("the player's data is not UTF-8 JSON")]
    NotText,
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
    #[error("the account plays on another node of the cluster now")]
    TakenOver,
    #[error("the cluster's database: {0}")]
    Cluster(String),
}

/// The data as the text the table holds, and the time of the save.
fn checked(data: Vec<u8>) -> Result<(String, i64), SaveError> {
    if data.len() > MAX_PLAYER_DATA {
        return Err(SaveError::TooLarge(data.len()));
    }
    let text = String::from_utf8(data).map_err(|_| SaveError::NotText)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok((text, now))
}

/// [`store`] in a cluster: only while this node's claim on the account is
/// still at `epoch`, in the same transaction that checks it
/// ([`SaveError::TakenOver`] when another node claimed it since).
pub async fn store_claimed(
    claims: &hearth_cluster::Claims,
    account: i64,
    epoch: i64,
    game: &str,
    data: Vec<u8>,
) -> Result<(), SaveError> {
    let (text, now) = checked(data)?;
    let mut fence = claims.fence(account, epoch).await.map_err(|e| match e {
        hearth_cluster::ClaimError::TakenOver { .. } => SaveError::TakenOver,
        other => SaveError::Cluster(other.to_string()),
    })?;
    let wait = hearth_cluster::claims::DATABASE_WAIT;
    let write = sqlx::query(UPSERT)
        .bind(account)
        .bind(game)
        .bind(text)
        .bind(now)
        .execute(&mut **fence.tx());
    match tokio::time::timeout(wait, write).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(SaveError::Cluster(e.to_string())),
        Err(_) => return Err(SaveError::Cluster(format!("no answer within {wait:?}"))),
    }
    match tokio::time::timeout(wait, fence.commit()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SaveError::Cluster(e.to_string())),
        Err(_) => Err(SaveError::Cluster(format!("no answer within {wait:?}"))),
    }
}

pub async fn store(
    storage: &Storage,
    account: i64,
    game: &str,
    data: Vec<u8>,
) -> Result<(), SaveError> {
    let (text, now) = checked(data)?;
    sqlx::query(UPSERT)
        .bind(account)
        .bind(game)
        .bind(text)
        .bind(now)
        .execute(&storage.pool)
        .await?;
    Ok(())
}
