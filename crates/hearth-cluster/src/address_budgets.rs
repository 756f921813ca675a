//! Per-address budgets shared by every node of a cluster: a token bucket
//! per (what, address) in PostgreSQL, so that a guesser who spreads their
//! logins over the nodes gets the budget of one server, not one per node.
//!
//! Each node keeps its own buckets in memory too (`hearth-server`'s
//! `rate_limit`), checked first: a flood from one address costs the
//! database only what gets through a node's own bucket. A take is one
//! statement that refills the bucket by the time since it was last touched
//! (on the database's clock, so nodes' clocks do not matter), and takes a
//! token only if one is there; concurrent takes on one bucket wait on its
//! row, so N takes of a bucket of N tokens all pass and the next is
//! refused, on any interleaving over any nodes.
//!
//! Rows whose bucket is full again are worth nothing and are pruned
//! ([`AddressBudgets::prune`]); the table holds only the addresses that
//! spent something within a refill time.

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::claims::DATABASE_WAIT;
use crate::leases::prepare;

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS cluster_address_budgets (
        kind TEXT NOT NULL,
        address BYTEA NOT NULL,
        tokens_milli BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        full_at_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, address)
    )"];

/// The database's clock in milliseconds, one value for the whole statement.
const NOW_MS: &str = "(extract(epoch from statement_timestamp()) * 1000)::bigint";

/// A bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Takes allowed at once.
    pub burst: u32,
    /// Takes allowed a minute after that.
    pub per_minute: u32,
}

/// Why a take could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("the cluster's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the cluster's database did not answer within {0:?}")]
    Timeout(Duration),
}

/// The cluster's shared per-address budgets.
#[derive(Clone)]
pub struct AddressBudgets {
    pool: PgPool,
}

impl AddressBudgets {
    /// Opens them on the cluster's database, creating the table if needed.
    pub async fn open(pool: PgPool) -> Result<Self, sqlx::Error> {
        prepare(&pool, SCHEMA).await?;
        Ok(Self { pool })
    }

    /// Takes one token of `kind` (say "login") from `address`'s bucket
    /// (the bytes of its address prefix): `Ok(Err(wait))` when it has none,
    /// with the time until it has one.
    pub async fn take(
        &self,
        kind: &str,
        address: &[u8],
        budget: Budget,
    ) -> Result<Result<(), Duration>, BudgetError> {
        let burst_milli = i64::from(budget.burst.max(1)) * 1000;
        let per_minute = i64::from(budget.per_minute.max(1));
        // Milli-tokens gained over `ms`: per_minute * 1000 per 60,000 ms.
        let refilled =
            |tokens: &str, at: &str| format!("LEAST($3, {tokens} + ({NOW_MS} - {at}) * $4 / 60)");
        let refilled_row = refilled("b.tokens_milli", "b.at_ms");
        let full_at = |tokens: &str| format!("{NOW_MS} + ($3 - ({tokens})) * 60 / $4");
        let take = format!(
            "INSERT INTO cluster_address_budgets AS b (kind, address, tokens_milli, at_ms, full_at_ms)
             VALUES ($1, $2, $3 - 1000, {NOW_MS}, {full_new})
             ON CONFLICT (kind, address) DO UPDATE SET
                 tokens_milli = {refilled_row} - 1000,
                 at_ms = {NOW_MS},
                 full_at_ms = {full_row}
             WHERE {refilled_row} >= 1000
             RETURNING tokens_milli",
            full_new = full_at("$3 - 1000"),
            full_row = full_at(&format!("{refilled_row} - 1000")),
        );
        let taken = with_timeout(
            sqlx::query(&take)
                .bind(kind)
                .bind(address)
                .bind(burst_milli)
                .bind(per_minute)
                .fetch_optional(&self.pool),
        )
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        // Refused: how long until the bucket has a whole token again.
        let check = format!(
            "SELECT {} AS tokens FROM cluster_address_budgets b WHERE kind = $1 AND address = $2",
            refilled("b.tokens_milli", "b.at_ms")
        );
        let tokens: i64 = with_timeout(
            sqlx::query(&check)
                .bind(kind)
                .bind(address)
                .bind(burst_milli)
                .bind(per_minute)
                .fetch_optional(&self.pool),
        )
        .await?
        .map_or(0, |row| row.get("tokens"));
        let missing = (1000 - tokens).max(1) as u64;
        let wait_ms = missing * 60 / per_minute as u64;
        Ok(Err(Duration::from_millis(wait_ms.max(1))))
    }

    /// Forgets the buckets that are full again (they hold nothing a fresh
    /// one would not); how many.
    pub async fn prune(&self) -> Result<u64, BudgetError> {
        let prune = format!("DELETE FROM cluster_address_budgets WHERE full_at_ms <= {NOW_MS}");
        let done = with_timeout(sqlx::query(&prune).execute(&self.pool)).await?;
        Ok(done.rows_affected())
    }
}

async fn with_timeout<T>(
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, BudgetError> {
    match tokio::time::timeout(DATABASE_WAIT, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BudgetError::Timeout(DATABASE_WAIT)),
    }
}
