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

use std::time::Duration;

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
    #[error("the cluster's database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("account {0} was claimed by other nodes as often as this one tried: try again")]
    Contended(i64),
}

/// The longest this node waits for the database on an account's behalf
/// (the server bounds statements too; this also covers a database that
/// stopped answering without closing the connection).
pub const DATABASE_WAIT: Duration = Duration::from_secs(5);

async fn with_timeout<T>(
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ClaimError> {
    match tokio::time::timeout(DATABASE_WAIT, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ClaimError::Timeout(DATABASE_WAIT)),
    }
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

    /// Claims the account for this node if its claim is still as read
    /// (`seen`: the epoch read, `None` if there was no claim): its new
    /// epoch, or `None` when another node claimed it in between (ask that
    /// one, then try again).
    pub async fn claim(&self, account: i64, seen: Option<i64>) -> Result<Option<i64>, ClaimError> {
        let query = match seen {
            None => sqlx::query(
                "INSERT INTO cluster_account_claims (account_id, node, epoch, claimed_at)
                 VALUES ($1, $2, 1, clock_timestamp())
                 ON CONFLICT (account_id) DO NOTHING
                 RETURNING epoch",
            )
            .bind(account)
            .bind(self.node.as_str()),
            Some(epoch) => sqlx::query(
                "UPDATE cluster_account_claims
                 SET node = $2, epoch = epoch + 1, claimed_at = clock_timestamp()
                 WHERE account_id = $1 AND epoch = $3
                 RETURNING epoch",
            )
            .bind(account)
            .bind(self.node.as_str())
            .bind(epoch),
        };
        let row = with_timeout(query.fetch_optional(&self.pool)).await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// A transaction in which to write the account's data as the node it
    /// plays on: refused with [`ClaimError::TakenOver`] unless this node
    /// still holds the claim at `epoch`; while open, no other node can
    /// claim the account.
    pub async fn fence(&self, account: i64, epoch: i64) -> Result<Fence, ClaimError> {
        let mut tx = with_timeout(self.pool.begin()).await?;
        let held = sqlx::query(
            "SELECT epoch FROM cluster_account_claims
             WHERE account_id = $1 AND node = $2 AND epoch = $3 FOR SHARE",
        )
        .bind(account)
        .bind(self.node.as_str())
        .bind(epoch)
        .fetch_optional(&mut *tx);
        match with_timeout(held).await? {
            Some(_) => Ok(Fence { tx, epoch }),
            None => Err(ClaimError::TakenOver { account, epoch }),
        }
    }
}
