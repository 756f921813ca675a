//! Accounts and tokens: register, log in, change password; argon2id hashes
//! on a bounded pool; access and refresh tokens with expiry, rotation on
//! refresh and revocation; failed logins counted atomically with an
//! exponential backoff.
//!
//! Every decision that must hold under concurrency is one statement or one
//! transaction: a login attempt is claimed (counted) by a single UPDATE before
//! its password is hashed, and a refresh token is spent by a single UPDATE
//! that only one caller can win.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hearth_world::names::name_key;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::config::AccountsConfig;
use crate::hash_pool::{HashPool, PoolFull};
use crate::rate_limit::{Action, AddressLimits};
use crate::storage::Storage;
use hearth_cluster::address_budgets::{AddressBudgets, Budget};
use hearth_proto::address_limit::AddressPrefix;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid account name: {0}")]
    InvalidName(&'static str),
    #[error("password too weak: {0}")]
    WeakPassword(&'static str),
    #[error("the name {0:?} is taken: choose another")]
    NameTaken(String),
    /// Unknown name and wrong password on purpose give the same answer, so
    /// that nobody can learn which names exist by trying them.
    #[error("wrong name or password")]
    WrongCredentials,
    #[error("account locked after too many wrong passwords: try again in {seconds} s")]
    Locked { seconds: u64 },
    #[error("the server is busy checking passwords: try again in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("too many attempts from your address: try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("unknown token: log in again")]
    TokenUnknown,
    #[error("token expired: refresh it or log in again")]
    TokenExpired,
    #[error("token revoked: log in again")]
    TokenRevoked,
    #[error("wrong kind of token: expected a {expected} token")]
    WrongTokenKind { expected: &'static str },
    #[error("this account has been locked by an administrator")]
    Disabled,
    #[error("storage error: {0}")]
    Storage(#[from] sqlx::Error),
}

impl AccountError {
    /// A stable machine-readable code for APIs and clients.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidName(_) => "invalid_name",
            AccountError::WeakPassword(_) => "weak_password",
            AccountError::NameTaken(_) => "name_taken",
            AccountError::WrongCredentials => "wrong_credentials",
            AccountError::Locked { .. } => "locked",
            AccountError::Busy { .. } => "busy",
            AccountError::RateLimited { .. } => "rate_limited",
            AccountError::TokenUnknown => "token_unknown",
            AccountError::TokenExpired => "token_expired",
            AccountError::TokenRevoked => "token_revoked",
            AccountError::WrongTokenKind { .. } => "wrong_token_kind",
            AccountError::Disabled => "disabled",
            AccountError::Storage(_) => "storage",
        }
    }

    /// Seconds after which trying again can succeed, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AccountError::Locked { seconds } => Some(*seconds),
            AccountError::Busy { retry_after } | AccountError::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl From<PoolFull> for AccountError {
    fn from(_: PoolFull) -> Self {
        // A hash takes tens of milliseconds and the queue is short: one
        // second is ample for it to drain.
        AccountError::Busy { retry_after: 1 }
    }
}

/// Counts for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStats {
    pub hashes_computed: u64,
    pub hash_pool_full: u64,
    pub rate_limited_login: u64,
    pub rate_limited_register: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// What an account may do beyond playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Player,
    /// The /admin dashboard and its API: kick, announce, lock accounts.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Admin => "admin",
        }
    }

    /// Unknown values read as the least privileged role.
    pub fn parse(value: &str) -> Self {
        match value {
            "admin" => Role::Admin,
            _ => Role::Player,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenPair {
    pub account_id: i64,
    pub name: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";

#[derive(Clone)]
pub struct Accounts {
    storage: Storage,
    config: AccountsConfig,
    hashes: HashPool,
    limits: Arc<AddressLimits>,
    /// In a cluster: the same per-address budgets, shared by every node
    /// (checked after this node's own, which spares the database floods).
    shared_limits: Option<AddressBudgets>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_id() -> i64 {
    let seed = hearth_proto::os_seed();
    // Positive 63-bit ids: portable as BIGINT, collisions astronomically rare
    // (and caught by the primary key).
    (u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) >> 1) as i64
}

fn hash_token(token: &str) -> String {
    hearth_codec::to_hex(&Sha256::digest(token.as_bytes()))
}

fn validate_name(name: &str) -> Result<(), AccountError> {
    if !(3..=32).contains(&name.chars().count()) {
        return Err(AccountError::InvalidName("use 3 to 32 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AccountError::InvalidName(
            "use letters, digits, '_' and '-' only",
        ));
    }
    if name.to_ascii_lowercase().starts_with("guest-") {
        return Err(AccountError::InvalidName(
            "names starting with 'guest-' are kept for players without an account",
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < 8 {
        return Err(AccountError::WeakPassword("use at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(AccountError::WeakPassword("use at most 1024 bytes"));
    }
    Ok(())
}

/// Claims one login attempt before its password is hashed: counts it, and
/// when it is the last one allowed, locks the account at once (the lock is
/// lifted again if this very attempt turns out right). Matches no row when
/// the name is unknown or the account is locked, so concurrent guesses can
/// never evaluate more than the limit. All right-hand sides see the row as it
/// was before the update, on SQLite and PostgreSQL alike.
///
/// $1 name key, $2 now (ms), $3 attempts allowed, $4 first lock (ms),
/// $5 longest lock (ms). A lock doubles the previous one, unless the previous
/// one ended longer than the longest lock ago: then it starts over.
const CLAIM_ATTEMPT: &str = "\
UPDATE accounts SET
    failed_logins = CASE WHEN failed_logins + 1 >= $3 THEN 0 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN failed_logins + 1 >= $3 THEN $2 + (CASE
            WHEN lock_ms = 0 OR locked_until + $5 < $2 THEN $4
            WHEN lock_ms * 2 > $5 THEN $5
            ELSE lock_ms * 2 END)
        ELSE locked_until END,
    lock_ms = CASE WHEN failed_logins + 1 >= $3 THEN (CASE
            WHEN lock_ms = 0 OR locked_until + $5 < $2 THEN $4
            WHEN lock_ms * 2 > $5 THEN $5
            ELSE lock_ms * 2 END)
        ELSE lock_ms END
WHERE name_key = $1 AND locked_until <= $2
RETURNING id, name, password_hash, failed_logins, locked_until";

impl Accounts {
    /// `limit_loopback`: charge loopback clients' logins and registrations
    /// to their address too (the top-level `limit_loopback`).
    pub fn new(storage: Storage, config: AccountsConfig, limit_loopback: bool) -> Self {
        let hashes = HashPool::new(config.hash_workers, config.hash_queue);
        let limits = Arc::new(AddressLimits::new(&config, limit_loopback));
        tracing::info!(
            workers = hashes.workers(),
            queue = config.hash_queue,
            "password hashing pool started"
        );
        Self {
            storage,
            config,
            hashes,
            limits,
            shared_limits: None,
        }
    }

    /// In a cluster: the per-address budgets hold across its nodes.
    pub fn with_shared_limits(mut self, budgets: Option<AddressBudgets>) -> Self {
        self.shared_limits = budgets;
        self
    }

    /// Charges one `action` to `address`; refused when the address has made
    /// too many recently (in a cluster: on any of its nodes).
    pub async fn throttle(&self, action: Action, address: IpAddr) -> Result<(), AccountError> {
        let refused = |wait: Duration| {
            tracing::info!(%address, ?action, "rate limited");
            AccountError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        };
        self.limits
            .check(action, address, Instant::now())
            .map_err(refused)?;
        let Some(shared) = &self.shared_limits else {
            return Ok(());
        };
        if self.limits.exempt(address) {
            return Ok(());
        }
        let (kind, budget) = match action {
            Action::Login => (
                "login",
                Budget {
                    burst: self.config.login_burst,
                    per_minute: self.config.login_per_minute,
                },
            ),
            Action::Register => (
                "register",
                Budget {
                    burst: self.config.register_burst,
                    per_minute: self.config.register_per_minute,
                },
            ),
        };
        let prefix = AddressPrefix::from(address);
        match shared.take(kind, prefix.as_bytes(), budget).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => {
                self.limits.count_refusal(action);
                Err(refused(wait))
            }
            // This node's own limit still holds; the login itself needs the
            // same database and says so if it is down.
            Err(error) => {
                tracing::warn!(%error, "the cluster's shared rate limits cannot be checked; this node's own apply");
                Ok(())
            }
        }
    }

    pub fn stats(&self) -> AccountStats {
        AccountStats {
            hashes_computed: self.hashes.computed(),
            hash_pool_full: self.hashes.refused(),
            rate_limited_login: self.limits.refused(Action::Login),
            rate_limited_register: self.limits.refused(Action::Register),
        }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    pub async fn register(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        validate_name(name)?;
        validate_password(password)?;
        let key = name_key(name);
        let taken = sqlx::query("SELECT id FROM accounts WHERE name_key = $1")
            .bind(&key)
            .fetch_optional(&self.storage.pool)
            .await?;
        if taken.is_some() {
            return Err(AccountError::NameTaken(name.to_owned()));
        }
        let hash = self.hashes.hash(password.to_owned()).await?;
        let id = random_id();
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, name, name_key, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(&key)
        .bind(&hash)
        .bind(now_ms())
        .execute(&self.storage.pool)
        .await;
        match inserted {
            Ok(_) => Ok(Account {
                id,
                name: name.to_owned(),
                role: Role::Player,
            }),
            // Two registrations raced past the check: the unique index decides.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AccountError::NameTaken(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a name and password. Failures are counted per account; after
    /// `max_failed_logins` the account is locked for a short, growing while.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        // The hash slot first: a busy server must not spend the attempt.
        let admission = self.hashes.admit()?;
        let key = name_key(name);
        let now = now_ms();
        let limit = i64::from(self.config.max_failed_logins.max(1));
        // Capped at a year so that `now + lock` cannot overflow a BIGINT.
        let longest = secs_to_ms(self.config.max_lock_secs.clamp(1, 365 * 24 * 3600));
        let first = secs_to_ms(self.config.lock_secs.max(1)).min(longest);
        let claimed = sqlx::query(CLAIM_ATTEMPT)
            .bind(&key)
            .bind(now)
            .bind(limit)
            .bind(first)
            .bind(longest)
            .fetch_optional(&self.storage.pool)
            .await?;
        let Some(row) = claimed else {
            let locked_until: Option<i64> =
                sqlx::query("SELECT locked_until FROM accounts WHERE name_key = $1")
                    .bind(&key)
                    .fetch_optional(&self.storage.pool)
                    .await?
                    .map(|row| row.try_get("locked_until"))
                    .transpose()?;
            return match locked_until {
                Some(until) => Err(locked(until, now)),
                None => {
                    // Same work as a wrong password, same answer.
                    admission.verify(password.to_owned(), None).await;
                    tracing::info!(name, "login for an unknown account");
                    Err(AccountError::WrongCredentials)
                }
            };
        };
        let id: i64 = row.try_get("id")?;
        let stored_name: String = row.try_get("name")?;
        let hash: String = row.try_get("password_hash")?;
        let failed: i64 = row.try_get("failed_logins")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        if admission.verify(password.to_owned(), Some(hash)).await {
            // Right: forget the failures, this attempt's own lock included.
            sqlx::query(
                "UPDATE accounts SET failed_logins = 0, locked_until = 0, lock_ms = 0 WHERE id = $1",
            )
            .bind(id)
            .execute(&self.storage.pool)
            .await?;
            let (role, disabled) = self.role_and_disabled(id).await?;
            if disabled {
                return Err(AccountError::Disabled);
            }
            return Ok(Account {
                id,
                name: stored_name,
                role,
            });
        }
        if locked_until > now {
            tracing::info!(
                account = id,
                lock_ms = locked_until - now,
                "wrong password: account locked"
            );
            return Err(locked(locked_until, now));
        }
        // The tries left go to the log only: telling the client would tell
        // an attacker the name exists.
        tracing::info!(account = id, tries_left = limit - failed, "wrong password");
        Err(AccountError::WrongCredentials)
    }

    /// Logs in with a password and issues a token pair.
    pub async fn login(&self, name: &str, password: &str) -> Result<TokenPair, AccountError> {
        let account = self.authenticate(name, password).await?;
        self.issue(&account).await
    }

    /// Changes the password; every token of the account is revoked in the
    /// same transaction.
    pub async fn change_password(
        &self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        validate_password(new)?;
        let account = self.authenticate(name, old).await?;
        let hash = self.hashes.hash(new.to_owned()).await?;
        let mut tx = self.storage.pool.begin().await?;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(account.id)
            .execute(&mut *tx)
            .await?;
        revoke_all_in(&mut tx, account.id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn issue(&self, account: &Account) -> Result<TokenPair, AccountError> {
        let mut tx = self.storage.pool.begin().await?;
        let pair = self.issue_in(&mut tx, account).await?;
        tx.commit().await?;
        Ok(pair)
    }

    async fn issue_in(
        &self,
        conn: &mut AnyConnection,
        account: &Account,
    ) -> Result<TokenPair, AccountError> {
        let now = now_ms();
        let access = new_token();
        let refresh = new_token();
        let ttl = |secs: u64| now.saturating_add(secs_to_ms(secs));
        for (token, kind, expires) in [
            (&access, ACCESS, ttl(self.config.access_token_secs)),
            (&refresh, REFRESH, ttl(self.config.refresh_token_secs)),
        ] {
            sqlx::query(
                "INSERT INTO tokens (hash, account_id, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash_token(token))
            .bind(account.id)
            .bind(kind)
            .bind(now)
            .bind(expires)
            .execute(&mut *conn)
            .await?;
        }
        Ok(TokenPair {
            account_id: account.id,
            name: account.name.clone(),
            access_token: access,
            refresh_token: refresh,
            expires_in: self.config.access_token_secs,
        })
    }

    /// The account an access token belongs to.
    pub async fn verify_access(&self, token: &str) -> Result<Account, AccountError> {
        self.check_token(token, ACCESS).await
    }

    async fn check_token(
        &self,
        token: &str,
        expected: &'static str,
    ) -> Result<Account, AccountError> {
        let row = sqlx::query(
            "SELECT t.kind, t.expires_at, t.revoked, a.id, a.name, a.role, a.disabled FROM tokens t \
             JOIN accounts a ON a.id = t.account_id WHERE t.hash = $1",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.storage.pool)
        .await?
        .ok_or(AccountError::TokenUnknown)?;
        let kind: String = row.try_get("kind")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let revoked: i64 = row.try_get("revoked")?;
        let account = Account {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: Role::parse(&row.try_get::<String, _>("role")?),
        };
        if row.try_get::<i64, _>("disabled")? != 0 {
            return Err(AccountError::Disabled);
        }
        if revoked != 0 {
            if kind == REFRESH {
                // A rotated-out refresh token came back: someone copied it.
                // End every session of the account (OAuth 2.0 BCP, 4.14).
                tracing::warn!(
                    account = account.id,
                    "refresh token reused: every token of the account revoked"
                );
                self.revoke_all(account.id).await?;
            }
            return Err(AccountError::TokenRevoked);
        }
        if kind != expected {
            return Err(AccountError::WrongTokenKind { expected });
        }
        if expires_at <= now_ms() {
            return Err(AccountError::TokenExpired);
        }
        Ok(account)
    }

    /// Trades a refresh token for a new pair. Spending the old token and
    /// issuing the new pair is one transaction, and only one caller can spend
    /// a token: a second use, even a concurrent one, finds it revoked, trips
    /// reuse detection, and (waiting for the first to commit) revokes the
    /// pair the first one got too.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AccountError> {
        let mut tx = self.storage.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE tokens SET revoked = 1 \
             WHERE hash = $1 AND kind = $2 AND revoked = 0 AND expires_at > $3 \
             RETURNING account_id",
        )
        .bind(hash_token(refresh_token))
        .bind(REFRESH)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            tx.rollback().await?;
            // Not spendable: say why (and trip reuse detection if revoked).
            self.check_token(refresh_token, REFRESH).await?;
            // It became spendable in between: it expired at the boundary.
            return Err(AccountError::TokenExpired);
        };
        let account_id: i64 = spent.try_get("account_id")?;
        let row = sqlx::query("SELECT name, role, disabled FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
        if row.try_get::<i64, _>("disabled")? != 0 {
            return Err(AccountError::Disabled);
        }
        let account = Account {
            id: account_id,
            name: row.try_get("name")?,
            role: Role::parse(&row.try_get::<String, _>("role")?),
        };
        let pair = self.issue_in(&mut tx, &account).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Revokes one token (log out).
    pub async fn revoke(&self, token: &str) -> Result<(), AccountError> {
        let done = sqlx::query("UPDATE tokens SET revoked = 1 WHERE hash = $1")
            .bind(hash_token(token))
            .execute(&self.storage.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::TokenUnknown);
        }
        Ok(())
    }

    pub async fn revoke_all(&self, account_id: i64) -> Result<(), AccountError> {
        let mut conn = self.storage.pool.acquire().await?;
        revoke_all_in(&mut conn, account_id).await
    }

    pub async fn count(&self) -> Result<i64, AccountError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
            .fetch_one(&self.storage.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.config.access_token_secs)
    }
}

async fn revoke_all_in(conn: &mut AnyConnection, account_id: i64) -> Result<(), AccountError> {
    sqlx::query("UPDATE tokens SET revoked = 1 WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn locked(until: i64, now: i64) -> AccountError {
    AccountError::Locked {
        seconds: (until.saturating_sub(now).max(1) as u64).div_ceil(1000),
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hearth_proto::os_seed())
}
