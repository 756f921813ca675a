//! Players of the built-in world whose places its own engine saved (the
//! `players` table) enter the world on the game API where they left it:
//! at their first login there, with no data of the game yet, their row
//! becomes the game's data of them (`hearth_world::WorldPlayer`: zone,
//! position, appearance, values). From their first save on, the game's
//! data is what counts; the row is left as it was.

use hearth_world::{Pos, WorldPlayer};
use sqlx::Row;

use crate::storage::Storage;

/// The account's place as the built-in engine saved it, as the world
/// game's data of the player; `None` if it saved none.
pub async fn load(storage: &Storage, account: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT zone, x, y, appearance, value0, value1, value2, value3 FROM players WHERE account_id = $1",
    )
    .bind(account)
    .fetch_optional(&storage.pool)
    .await?;
    Ok(row.map(|row| {
        let value = |i: usize| {
            row.get::<i64, _>(i)
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
        };
        let player = WorldPlayer {
            zone: Some(row.get::<String, _>(0)),
            at: Some(Pos::new(value(1), value(2))),
            appearance: row.get::<i64, _>(3).clamp(0, i64::from(u32::MAX)) as u32,
            values: [value(4), value(5), value(6), value(7)],
        };
        serde_json::to_vec(&player).expect("a player serializes")
    }))
}
