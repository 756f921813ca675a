//! Which node a player's account plays on: a claim per account in
//! PostgreSQL, with an epoch that fences the player's saves.
//!
//! A login on a node claims the account (the epoch goes up by one), after
//! asking the node that held the claim to end the account's session there
//! and save it ([`crate::release`]). Every save of the player's data is
//! made under the claim ([`Claims::fence`]): a node whose claim was taken
//! over (the player logged in elsewhere while this node was frozen or cut
//! off) has its saves refused by the database, so it can never overwrite
//! what the player's new node wrote.

use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::leases::{prepare, Fence};
use crate::node::NodeId;

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS cluster_account_claims (
        account_id BIGINT PRIMARY KEY,
        node TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL
    )"];

pub(crate) async fn prepare_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    prepare(pool, SCHEMA).await
}

/// The account claims of a cluster's database, used as one node.
#[derive(Clone)]
pub struct Claims {
    pool: PgPool,
    node: NodeId,
}

/// Why a save under a claim was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("account {account} now plays on another node (this node's claim at epoch {epoch} was taken over): its data is not written here")]
    TakenOver { account: i64, epoch: i64 },
    #[error("the cluster's database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Claims {
    pub fn new(pool: PgPool, node: NodeId) -> Self {
        Self { pool, node }
    }

    /// The node holding the account's claim and its epoch, if any. A hint
    /// for whom to ask to let go, never a decision.
    pub async fn holder(&self, account: i64) -> Result<Option<(String, i64)>, ClaimError> {
        let row =
            sqlx::query("SELECT node, epoch FROM cluster_account_claims WHERE account_id = $1")
                .bind(account)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// Claims the account for this node: its new epoch.
    pub async fn claim(&self, account: i64) -> Result<i64, ClaimError> {
        let row = sqlx::query(
            "INSERT INTO cluster_account_claims AS c (account_id, node, epoch, claimed_at)
             VALUES ($1, $2, 1, clock_timestamp())
             ON CONFLICT (account_id) DO UPDATE
                 SET node = excluded.node, epoch = c.epoch + 1, claimed_at = excluded.claimed_at
             RETURNING epoch",
        )
        .bind(account)
        .bind(self.node.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// A transaction in which to write the account's data as the node it
    /// plays on: refused with [`ClaimError::TakenOver`] unless this node
    /// still holds the claim at `epoch`; while open, no other node can
    /// claim the account.
    pub async fn fence(&self, account: i64, epoch: i64) -> Result<Fence, ClaimError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "SELECT epoch FROM cluster_account_claims
             WHERE account_id = $1 AND node = $2 AND epoch = $3 FOR SHARE",
        )
        .bind(account)
        .bind(self.node.as_str())
        .bind(epoch)
        .fetch_optional(&mut *tx)
        .await?;
        match held {
            Some(_) => Ok(Fence { tx, epoch }),
            None => Err(ClaimError::TakenOver { account, epoch }),
        }
    }
}
