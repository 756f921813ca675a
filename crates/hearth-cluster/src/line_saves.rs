//! Lines that outlive their node: each line a node opens is held under a
//! lease with a name the whole cluster shares (`PREFIX/ZONE/NUMBER`, the
//! lowest number free in the zone), its state is saved under that lease's
//! epoch, and when its node dies another node takes the lapsed lease and
//! restarts the line from its last save.
//!
//! The rules, on top of [`crate::leases`]:
//! - a new line takes a name nobody holds **and that has no save**
//!   ([`LineSaves::take_new`]): the name of a dead node's line is kept for
//!   its restart, never reused for an empty line that would overwrite it;
//! - a save is written in a fenced transaction ([`Leases::fence`]): a node
//!   whose lease lapsed or was taken over writes nothing;
//! - a line that closes normally (empty, idle) deletes its save, under the
//!   same fence, and releases its lease: its name is free again;
//! - a lapsed lease with a save is an orphan ([`LineSaves::orphans`]): any
//!   node may take it ([`Leases::take`], a compare-and-swap, so one wins)
//!   and read the save ([`LineSaves::load`]).

use sqlx::Row;

use crate::leases::{prepare, Lease, LeaseError, Leases, MAX_LINE_NAME};

/// The largest line state saved (a snapshot bigger than this is refused,
/// counted, and the last save stands).
pub const MAX_LINE_SAVE: usize = 16 << 20;

/// Lines a zone may have cluster-wide: the numbers a new line looks at.
pub const MAX_LINES_PER_ZONE: i64 = 10_000;

/// Looks for free numbers a new line makes at most, each followed by a
/// take of each candidate found, in order, until one succeeds.
pub const TAKE_ROUNDS: usize = 16;

/// Orphans listed per look.
pub const ORPHANS_PER_LOOK: i64 = 16;

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS cluster_line_saves (
        line TEXT PRIMARY KEY,
        zone TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        saved_at TIMESTAMPTZ NOT NULL,
        state BYTEA NOT NULL
    )"];

/// The lowest numbers of `$1 || n` that nobody holds and that have no
/// save: candidates for a new line (a take decides). Only the first
/// (names of the zone so far + 8) numbers are looked at: at least 8 of
/// them are free.
const FREE_NUMBERS: &str = "SELECT n FROM generate_series(1, LEAST($2::bigint,
        (SELECT count(*) FROM cluster_line_leases WHERE starts_with(line, $1)) + 8)) AS n
    WHERE NOT EXISTS (
        SELECT 1 FROM cluster_line_leases l
        WHERE l.line = $1 || n AND l.owner IS NOT NULL AND l.expires_at > clock_timestamp())
      AND NOT EXISTS (SELECT 1 FROM cluster_line_saves s WHERE s.line = $1 || n)
    ORDER BY n LIMIT 8";

/// [`crate::leases`]' take, for a line with no save only.
const TAKE_NEW: &str = crate::leases::take_statement!(
    "NOT EXISTS (SELECT 1 FROM cluster_line_saves s WHERE s.line = l.line)"
);

const STORE: &str = "INSERT INTO cluster_line_saves (line, zone, epoch, saved_at, state)
    VALUES ($1, $2, $3, clock_timestamp(), $4)
    ON CONFLICT (line) DO UPDATE
        SET zone = excluded.zone, epoch = excluded.epoch,
            saved_at = excluded.saved_at, state = excluded.state";

/// Lines with a save whose lease nobody holds: `$1` is the prefix, `$2`
/// the zones the caller runs, `$4` the lines it passes over.
const ORPHANS: &str = "SELECT s.line, s.zone FROM cluster_line_saves s
    JOIN cluster_line_leases l ON l.line = s.line
    WHERE starts_with(s.line, $1) AND s.zone = ANY($2) AND NOT (s.line = ANY($4))
      AND (l.owner IS NULL OR l.expires_at <= clock_timestamp())
    ORDER BY s.saved_at LIMIT $3";

/// A line's saved state, read by the node that took its lease.
#[derive(Debug)]
pub struct SavedLine {
    pub zone: String,
    /// The epoch it was saved under (lower than the taker's).
    pub epoch: i64,
    pub state: Vec<u8>,
}

/// The saves of one game's lines in a cluster, used as one node.
#[derive(Clone)]
pub struct LineSaves {
    leases: Leases,
    /// `CLUSTER/GAME/`: every line name starts with it.
    prefix: String,
}

impl LineSaves {
    /// The line saves of game `game` in cluster `cluster` (creates the
    /// table if it is missing).
    pub async fn open(leases: Leases, cluster: &str, game: &str) -> Result<Self, LeaseError> {
        prepare(leases.pool(), SCHEMA).await?;
        Ok(Self {
            leases,
            prefix: format!("{cluster}/{game}/"),
        })
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The prefix of a zone's line names.
    fn zone_prefix(&self, zone: &str) -> Result<String, LeaseError> {
        let prefix = format!("{}{zone}/", self.prefix);
        // Room for the number.
        if prefix.len() + 5 > MAX_LINE_NAME {
            return Err(LeaseError::BadLine(prefix));
        }
        Ok(prefix)
    }

    /// Takes a lease for a new line of `zone`: the lowest number that
    /// nobody holds and that has no save. `Ok(None)`: no number is free,
    /// or other nodes took every candidate first, [`TAKE_ROUNDS`] times
    /// over (try again later).
    pub async fn take_new(&self, zone: &str) -> Result<Option<Lease>, LeaseError> {
        let prefix = self.zone_prefix(zone)?;
        for _ in 0..TAKE_ROUNDS {
            let free: Vec<i64> = sqlx::query(FREE_NUMBERS)
                .bind(&prefix)
                .bind(MAX_LINES_PER_ZONE)
                .fetch_all(self.leases.pool())
                .await?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            if free.is_empty() {
                return Ok(None);
            }
            for number in free {
                let line = format!("{prefix}{number}");
                if let Some(lease) = self.try_take_new(line).await? {
                    return Ok(Some(lease));
                }
            }
        }
        Ok(None)
    }

    /// Opens a transaction fenced by `lease` and writes `state` as the
    /// line's save in it (not committed yet): refused before anything is
    /// written if it is too large or the lease is no longer this node's.
    async fn fenced_save(
        &self,
        lease: &Lease,
        zone: &str,
        state: &[u8],
    ) -> Result<crate::Fence, LeaseError> {
        if state.len() > MAX_LINE_SAVE {
            return Err(LeaseError::TooLarge {
                line: lease.line.clone(),
                bytes: state.len(),
            });
        }
        let mut fence = self.leases.fence(lease).await?;
        sqlx::query(STORE)
            .bind(&lease.line)
            .bind(zone)
            .bind(fence.epoch())
            .bind(state)
            .execute(&mut **fence.tx())
            .await?;
        Ok(fence)
    }

    /// One attempt at a new line's name: the lease row is locked first, so
    /// that a first save of that name committing meanwhile is seen by the
    /// check that follows (a statement's own snapshot would miss it).
    /// `None`: the name is not free, or another node is taking it now.
    async fn try_take_new(&self, line: String) -> Result<Option<Lease>, LeaseError> {
        let sent = std::time::Instant::now();
        let mut tx = self.leases.pool().begin().await?;
        // Another node taking the same name now wins it: this one moves on
        // to the next candidate instead of queueing behind it.
        let first: bool =
            sqlx::query("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 77452802))")
                .bind(&line)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        if !first {
            return Ok(None);
        }
        sqlx::query("SELECT 1 FROM cluster_line_leases WHERE line = $1 FOR UPDATE")
            .bind(&line)
            .fetch_optional(&mut *tx)
            .await?;
        let epoch: Option<i64> = sqlx::query(TAKE_NEW)
            .bind(&line)
            .bind(self.leases.node().as_str())
            .bind(self.leases.lease_ms())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.get(0));
        tx.commit().await?;
        Ok(epoch.map(|epoch| self.leases.held(line, epoch, sent)))
    }

    /// Saves `state` as line `lease`'s, under its epoch: refused with
    /// [`LeaseError::Stale`] if this node no longer holds the lease.
    pub async fn store(&self, lease: &Lease, zone: &str, state: &[u8]) -> Result<(), LeaseError> {
        let fence = self.fenced_save(lease, zone, state).await?;
        fence.commit().await
    }

    /// The line closed normally: its save is deleted (under its lease) and
    /// its lease released, so its name is free for a new line.
    pub async fn close(&self, lease: &Lease) -> Result<(), LeaseError> {
        let mut fence = self.leases.fence(lease).await?;
        sqlx::query("DELETE FROM cluster_line_saves WHERE line = $1")
            .bind(&lease.line)
            .execute(&mut **fence.tx())
            .await?;
        fence.commit().await?;
        self.leases.release(lease).await
    }

    /// Lines of `zones` whose node stopped holding them with their state
    /// saved, but those in `skip` (lines the caller cannot restart, or
    /// holds): (line, zone), oldest save first, at most
    /// [`ORPHANS_PER_LOOK`]. A read: take the lease before using one.
    pub async fn orphans(
        &self,
        zones: &[String],
        skip: &[String],
    ) -> Result<Vec<(String, String)>, LeaseError> {
        let rows = sqlx::query(ORPHANS)
            .bind(&self.prefix)
            .bind(zones)
            .bind(ORPHANS_PER_LOOK)
            .bind(skip)
            .fetch_all(self.leases.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// The save of a line whose lease this node has just taken (`None`: it
    /// has none, e.g. its last holder closed it in the meantime).
    pub async fn load(&self, lease: &Lease) -> Result<Option<SavedLine>, LeaseError> {
        let mut fence = self.leases.fence(lease).await?;
        let row = sqlx::query("SELECT zone, epoch, state FROM cluster_line_saves WHERE line = $1")
            .bind(&lease.line)
            .fetch_optional(&mut **fence.tx())
            .await?;
        fence.commit().await?;
        Ok(row.map(|row| SavedLine {
            zone: row.get(0),
            epoch: row.get(1),
            state: row.get(2),
        }))
    }
}

/// Hands a line's lease to another node with the line's state: `$1` line,
/// `$2` this node, `$3` its epoch, `$4` the other node, `$5` the lease in
/// milliseconds. The new epoch, or no row if this node no longer held it.
const HAND: &str = "WITH handed AS (
        UPDATE cluster_line_leases
        SET owner = $4, epoch = epoch + 1,
            expires_at = clock_timestamp() + $5 * interval '1 millisecond',
            taken_at = clock_timestamp()
        WHERE line = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()
        RETURNING line, epoch, taken_at
    )
    INSERT INTO cluster_lease_history (line, epoch, owner, taken_at)
    SELECT line, epoch, $4, taken_at FROM handed
    RETURNING epoch";

impl LineSaves {
    /// Moves a line to node `to`: in one transaction, fenced by `lease`,
    /// saves `state` and hands the lease to `to` at the next epoch (the
    /// epoch it gets). Nothing is written if this node no longer holds the
    /// lease ([`LeaseError::Stale`]). `to` must then [`LineSaves::adopt`]
    /// it before the lease ends, or it lapses and any node restarts the
    /// line from this save.
    pub async fn hand_to(
        &self,
        lease: &Lease,
        zone: &str,
        state: &[u8],
        to: &crate::NodeId,
    ) -> Result<i64, LeaseError> {
        let mut fence = self.fenced_save(lease, zone, state).await?;
        let epoch: Option<i64> = sqlx::query(HAND)
            .bind(&lease.line)
            .bind(self.leases.node().as_str())
            .bind(lease.epoch)
            .bind(to.as_str())
            .bind(self.leases.lease_ms())
            .fetch_optional(&mut **fence.tx())
            .await?
            .map(|row| row.get(0));
        let Some(epoch) = epoch else {
            return Err(LeaseError::Stale {
                line: lease.line.clone(),
                epoch: lease.epoch,
            });
        };
        fence.commit().await?;
        Ok(epoch)
    }

    /// Takes up line `line`, handed to this node at `epoch` by another
    /// ([`LineSaves::hand_to`]): a renewal proves it is this node's and
    /// starts its clock; [`LeaseError::Stale`] if it is not (any more).
    pub async fn adopt(&self, line: &str, epoch: i64) -> Result<Lease, LeaseError> {
        if line.is_empty() || line.len() > MAX_LINE_NAME || !line.starts_with(&self.prefix) {
            return Err(LeaseError::BadLine(
                line.chars().take(MAX_LINE_NAME).collect(),
            ));
        }
        let mut lease = self
            .leases
            .held(line.to_owned(), epoch, std::time::Instant::now());
        self.leases.renew(&mut lease).await?;
        Ok(lease)
    }
}

impl LineSaves {
    /// Gives back a line handed to this node at `epoch` that it will not
    /// take up (it drains): released, so any node restarts it from its
    /// save at its next look. Nothing if it is not this node's at that
    /// epoch.
    pub async fn give_back(&self, line: &str, epoch: i64) -> Result<(), LeaseError> {
        let lease = self
            .leases
            .held(line.to_owned(), epoch, std::time::Instant::now());
        self.leases.release(&lease).await
    }
}
