//! Leases on lines, in PostgreSQL: which node runs which line, decided by
//! a compare-and-swap in the database and never from a read, each with a
//! fencing epoch.
//!
//! Why PostgreSQL and not a JetStream KV bucket: the lease's end is on one
//! clock (the database's), not on the nodes'; the epoch lives in the same
//! database as the saves it fences, so "the writer still holds the lease"
//! and "the save is written" are one transaction; and a row lock orders a
//! takeover after every write of the previous holder. A KV bucket's
//! revision would be a fencing token PostgreSQL could not check in the same
//! transaction, and its compare-and-swap had known faults on the server
//! versions Debian ships (see docs/CLUSTER.md).
//!
//! The rules:
//! - [`Leases::take`] succeeds only for a line nobody holds (never held,
//!   released, or expired on the database's clock); it adds one to the
//!   line's epoch.
//! - [`Leases::renew`] succeeds only for the holder, at the epoch it took,
//!   before the lease has expired: a lease that lapsed is not revived, even
//!   if nobody took it (the holder takes it again, at a new epoch).
//! - [`Leases::fence`] opens a transaction that holds a share lock on the
//!   lease row after checking that the caller still holds it at its epoch
//!   and that it has not expired: a takeover waits for the transaction to
//!   end, so every write made through it comes before the next epoch.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::lease_clock::LeaseClock;
use crate::node::NodeId;

/// Longest line name a lease is taken for (the game host names lines
/// `zone/number`).
pub const MAX_LINE_NAME: usize = 128;

/// The tables, created when a node joins (idempotent). Only clusters use
/// them, and clusters run on PostgreSQL alone.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cluster_line_leases (
        line TEXT PRIMARY KEY,
        owner TEXT,
        epoch BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        taken_at TIMESTAMPTZ NOT NULL
    )",
    // Every take, kept: who held which epoch of which line from when. The
    // chaos tests read it to prove that no line had two owners at once.
    "CREATE TABLE IF NOT EXISTS cluster_lease_history (
        line TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        owner TEXT NOT NULL,
        taken_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (line, epoch)
    )",
];

/// The take statement: `line` `$1` for node `$2` if nobody holds it and
/// `$condition` (SQL over the lease row `l`) holds; the take recorded in
/// the history. The lease ends `$3` milliseconds after the database's now,
/// as of the update (not of the statement's start: a take that waited for
/// a lock gets its whole lease). One copy for every kind of take.
macro_rules! take_statement {
    ($condition:literal) => {
        concat!(
            "WITH taken AS (
        INSERT INTO cluster_line_leases AS l (line, owner, epoch, expires_at, taken_at)
        VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond', clock_timestamp())
        ON CONFLICT (line) DO UPDATE
            SET owner = excluded.owner, epoch = l.epoch + 1,
                expires_at = clock_timestamp() + $3 * interval '1 millisecond',
                taken_at = clock_timestamp()
            WHERE (l.owner IS NULL OR l.expires_at <= clock_timestamp()) AND ",
            $condition,
            "
        RETURNING line, epoch, taken_at
    )
    INSERT INTO cluster_lease_history (line, epoch, owner, taken_at)
    SELECT line, epoch, $2, taken_at FROM taken
    RETURNING epoch"
        )
    };
}
pub(crate) use take_statement;

/// Takes `line` for `$2` if nobody holds it.
const TAKE: &str = take_statement!("true");

const RENEW: &str = "UPDATE cluster_line_leases
    SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
    WHERE line = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()";

/// [`RENEW`] for many leases at once: `$1` lines and `$3` their epochs.
const RENEW_MANY: &str = "UPDATE cluster_line_leases l
    SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
    FROM unnest($1::text[], $3::bigint[]) AS held(line, epoch)
    WHERE l.line = held.line AND l.owner = $2 AND l.epoch = held.epoch
      AND l.expires_at > clock_timestamp()
    RETURNING l.line, l.epoch";

const RELEASE: &str = "UPDATE cluster_line_leases
    SET owner = NULL, expires_at = clock_timestamp()
    WHERE line = $1 AND owner = $2 AND epoch = $3";

/// FOR SHARE: a takeover's UPDATE waits for this transaction to end.
const FENCE: &str = "SELECT epoch FROM cluster_line_leases
    WHERE line = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()
    FOR SHARE";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the line name {0:?} is empty or longer than {MAX_LINE_NAME} bytes")]
    BadLine(String),
    #[error("the lease on line {line} at epoch {epoch} is no longer this node's (it lapsed or another node took it): stop using it")]
    Stale { line: String, epoch: i64 },
    #[error(
        "the state of line {line} is {bytes} bytes, over the {} a save may hold: it was not saved",
        crate::line_saves::MAX_LINE_SAVE
    )]
    TooLarge { line: String, bytes: usize },
    #[error("the cluster's database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A lease this node holds on a line.
#[derive(Debug, Clone)]
pub struct Lease {
    pub line: String,
    /// The fencing token: every write made as the line's owner carries it.
    pub epoch: i64,
    /// When to renew and when to stop, on this node's clock.
    pub clock: LeaseClock,
}

/// The lease table of a cluster's database, used as one node.
#[derive(Clone)]
pub struct Leases {
    pool: PgPool,
    node: NodeId,
    lease: Duration,
}

impl Leases {
    /// Connects to the cluster's PostgreSQL database as `node` and creates
    /// the lease tables if they are missing.
    ///
    /// Every statement and lock wait on this pool is bounded by a fraction
    /// of the lease, and so is a transaction left idle (a fenced write
    /// whose node froze half-way): PostgreSQL aborts it and releases its
    /// locks, so a frozen node can hold a takeover off only that long, and
    /// its write never lands.
    pub async fn connect(url: &str, node: NodeId, lease: Duration) -> Result<Self, LeaseError> {
        let ms = |d: Duration| d.as_millis().max(1).to_string();
        let options = PgConnectOptions::from_str(url)?.options([
            ("lock_timeout", ms(lease / 3)),
            ("statement_timeout", ms(lease / 2)),
            ("idle_in_transaction_session_timeout", ms(lease / 2)),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(lease / 3)
            .connect_with(options)
            .await?;
        Self::with_pool(pool, node, lease).await
    }

    /// [`Leases::connect`] on a pool of the caller's.
    pub async fn with_pool(
        pool: PgPool,
        node: NodeId,
        lease: Duration,
    ) -> Result<Self, LeaseError> {
        prepare(&pool, SCHEMA).await?;
        crate::claims::prepare_schema(&pool).await?;
        Ok(Self { pool, node, lease })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn lease_ms(&self) -> i64 {
        self.lease.as_millis().min(i64::MAX as u128) as i64
    }

    /// How long a take or renewal holds a lease for.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// A lease taken by a statement sent at `sent`.
    pub(crate) fn held(&self, line: String, epoch: i64, sent: Instant) -> Lease {
        Lease {
            line,
            epoch,
            clock: LeaseClock::taken(self.lease, sent),
        }
    }

    /// Takes `line` if nobody holds it: `Ok(None)` when another node does.
    pub async fn take(&self, line: &str) -> Result<Option<Lease>, LeaseError> {
        check_line(line)?;
        let sent = Instant::now();
        let row = sqlx::query(TAKE)
            .bind(line)
            .bind(self.node.as_str())
            .bind(self.lease_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| self.held(line.to_owned(), row.get(0), sent)))
    }

    /// Renews every lease of `leases` in one statement: the ones renewed
    /// have their clocks count from this renewal; the (line, epoch) of the
    /// ones that are [`LeaseError::Stale`] are returned.
    pub async fn renew_many(&self, leases: &mut [Lease]) -> Result<Vec<(String, i64)>, LeaseError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let lines: Vec<&str> = leases.iter().map(|lease| lease.line.as_str()).collect();
        let epochs: Vec<i64> = leases.iter().map(|lease| lease.epoch).collect();
        let sent = Instant::now();
        let renewed: std::collections::HashSet<(String, i64)> = sqlx::query(RENEW_MANY)
            .bind(&lines)
            .bind(self.node.as_str())
            .bind(&epochs)
            .bind(self.lease_ms())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut stale = Vec::new();
        for lease in leases.iter_mut() {
            // By line and epoch: two copies of one line at two epochs are
            // two leases, of which at most one is held.
            match renewed.contains(&(lease.line.clone(), lease.epoch)) {
                true => lease.clock.renewed(sent),
                false => stale.push((lease.line.clone(), lease.epoch)),
            }
        }
        Ok(stale)
    }

    /// Renews `lease`; on success its clock counts from this renewal. A
    /// lease another node took, or that lapsed, is [`LeaseError::Stale`].
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), LeaseError> {
        let sent = Instant::now();
        let done = sqlx::query(RENEW)
            .bind(&lease.line)
            .bind(self.node.as_str())
            .bind(lease.epoch)
            .bind(self.lease_ms())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            lease.clock.renewed(sent);
            Ok(())
        } else {
            Err(stale(lease))
        }
    }

    /// Gives `lease` up (a drain, a shutdown): another node may take the
    /// line at once. Releasing a lease no longer held does nothing.
    pub async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        sqlx::query(RELEASE)
            .bind(&lease.line)
            .bind(self.node.as_str())
            .bind(lease.epoch)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A transaction in which to write as the line's owner: refused with
    /// [`LeaseError::Stale`] unless this node still holds `lease` at its
    /// epoch; while it is open, nobody can take the line over.
    pub async fn fence(&self, lease: &Lease) -> Result<Fence, LeaseError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(FENCE)
            .bind(&lease.line)
            .bind(self.node.as_str())
            .bind(lease.epoch)
            .fetch_optional(&mut *tx)
            .await?;
        match held {
            Some(_) => Ok(Fence {
                tx,
                epoch: lease.epoch,
            }),
            None => Err(stale(lease)),
        }
    }

    /// Who holds `line` now, and at which epoch, on the database's clock
    /// (`None`: nobody). For the admin pages; never decide from it.
    pub async fn holder(&self, line: &str) -> Result<Option<(String, i64)>, LeaseError> {
        let row = sqlx::query(
            "SELECT owner, epoch FROM cluster_line_leases
             WHERE line = $1 AND owner IS NOT NULL AND expires_at > clock_timestamp()",
        )
        .bind(line)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }
}

/// A transaction opened under a lease or an account's claim
/// ([`Leases::fence`], [`crate::claims::Claims::fence`]).
pub struct Fence {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) epoch: i64,
}

impl Fence {
    /// Where to run the writes.
    pub fn tx(&mut self) -> &mut Transaction<'static, Postgres> {
        &mut self.tx
    }

    /// The epoch the writes are made at (to store beside them).
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    pub async fn commit(self) -> Result<(), LeaseError> {
        Ok(self.tx.commit().await?)
    }
}

/// Runs `statements` (CREATE TABLE IF NOT EXISTS ...) one node at a time:
/// two nodes starting at once can otherwise still collide in PostgreSQL's
/// catalog.
pub(crate) async fn prepare(pool: &PgPool, statements: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(77452801)")
        .execute(&mut *tx)
        .await?;
    for statement in statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn check_line(line: &str) -> Result<(), LeaseError> {
    if line.is_empty() || line.len() > MAX_LINE_NAME {
        return Err(LeaseError::BadLine(
            line.chars().take(MAX_LINE_NAME).collect(),
        ));
    }
    Ok(())
}

fn stale(lease: &Lease) -> LeaseError {
    LeaseError::Stale {
        line: lease.line.clone(),
        epoch: lease.epoch,
    }
}
