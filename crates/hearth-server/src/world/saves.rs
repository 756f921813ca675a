//! Players' saved places in the world: read at login, written by one task
//! that coalesces saves per account and writes them in batches.

use std::collections::BTreeMap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hearth_world::{Pos, SavedPlayer};
use sqlx::Row;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::storage::Storage;

/// What a login restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub zone: String,
    pub line: u32,
    pub pos: Pos,
    pub appearance: u32,
    pub values: [i32; 4],
    /// False when the player enters another zone than the saved one.
    pub pos_valid: bool,
}

pub async fn load(storage: &Storage, account: i64) -> Result<Option<Restored>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT zone, line, x, y, appearance, value0, value1, value2, value3 FROM players WHERE account_id = $1",
    )
    .bind(account)
    .fetch_optional(&storage.pool)
    .await?;
    Ok(row.map(|row| Restored {
        zone: row.get::<String, _>(0),
        line: row.get::<i64, _>(1).clamp(1, i64::from(u32::MAX)) as u32,
        pos: Pos::new(row.get::<i64, _>(2) as i32, row.get::<i64, _>(3) as i32),
        appearance: row.get::<i64, _>(4) as u32,
        values: [
            row.get::<i64, _>(5) as i32,
            row.get::<i64, _>(6) as i32,
            row.get::<i64, _>(7) as i32,
            row.get::<i64, _>(8) as i32,
        ],
        pos_valid: true,
    }))
}

// INSERT ... SELECT ... WHERE EXISTS: the last save of a player whose
// account was just deleted (it logs out as it is deleted) finds no account
// and writes nothing, instead of failing on the foreign key.
const UPSERT: &str = "INSERT INTO players (account_id, zone, line, x, y, appearance, value0, value1, value2, value3, saved_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $1) \
     ON CONFLICT (account_id) DO UPDATE SET zone = excluded.zone, line = excluded.line, x = excluded.x, \
     y = excluded.y, appearance = excluded.appearance, value0 = excluded.value0, value1 = excluded.value1, \
     value2 = excluded.value2, value3 = excluded.value3, saved_at = excluded.saved_at";

/// Saves waiting for the writer, at most one per account (a newer save
/// replaces an older one), so the world hands them over without ever
/// waiting, however slow the database: the buffer is bounded by the
/// accounts with unsaved changes.
#[derive(Default)]
pub struct SaveBuffer {
    pending: Mutex<BTreeMap<i64, SavedPlayer>>,
    wake: Notify,
    closed: AtomicBool,
}

impl SaveBuffer {
    /// Queues `saved` (players without an account are not saved).
    pub fn push(&self, saved: SavedPlayer) {
        if let Some(account) = saved.account {
            self.pending
                .lock()
                .expect("not poisoned")
                .insert(account, saved);
            self.wake.notify_one();
        }
    }

    /// Lets the writer finish: it writes what is queued, then ends.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.pending.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts the writer; it ends after [`SaveBuffer::close`], once everything
/// queued is written.
pub fn spawn_writer(storage: Storage) -> (Arc<SaveBuffer>, JoinHandle<()>) {
    let buffer = Arc::new(SaveBuffer::default());
    let queue = buffer.clone();
    let task = tokio::spawn(async move {
        loop {
            let batch = std::mem::take(&mut *queue.pending.lock().expect("not poisoned"));
            if batch.is_empty() {
                if queue.closed.load(Ordering::SeqCst) {
                    return;
                }
                queue.wake.notified().await;
                continue;
            }
            if let Err(error) = write(&storage, &batch).await {
                tracing::error!(%error, players = batch.len(), "saving players failed; retrying once");
                if let Err(error) = write(&storage, &batch).await {
                    tracing::error!(%error, players = batch.len(), "saving players failed again: these saves are lost");
                }
            }
        }
    });
    (buffer, task)
}

async fn write(storage: &Storage, batch: &BTreeMap<i64, SavedPlayer>) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut transaction = storage.pool.begin().await?;
    for (account, saved) in batch {
        sqlx::query(UPSERT)
            .bind(*account)
            .bind(saved.zone.clone())
            .bind(i64::from(saved.line))
            .bind(i64::from(saved.pos.x))
            .bind(i64::from(saved.pos.y))
            .bind(i64::from(saved.appearance))
            .bind(i64::from(saved.values[0]))
            .bind(i64::from(saved.values[1]))
            .bind(i64::from(saved.values[2]))
            .bind(i64::from(saved.values[3]))
            .bind(now)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await
}
