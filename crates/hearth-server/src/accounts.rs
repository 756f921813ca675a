//! Accounts and tokens: register, log in, change password; argon2id hashes;
//! access and refresh tokens with expiry, rotation on refresh and revocation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::config::AccountsConfig;
use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid account name: {0}")]
    InvalidName(&'static str),
    #[error("password too weak: {0}")]
    WeakPassword(&'static str),
    #[error("the name {0:?} is taken: choose another")]
    NameTaken(String),
    #[error("no account named {0:?}: register first")]
    UnknownAccount(String),
    #[error("wrong password ({remaining} tries left before the account is locked)")]
    WrongPassword { remaining: u32 },
    #[error("account locked after too many wrong passwords: try again in {seconds} s")]
    Locked { seconds: u64 },
    #[error("unknown token: log in again")]
    TokenUnknown,
    #[error("token expired: refresh it or log in again")]
    TokenExpired,
    #[error("token revoked: log in again")]
    TokenRevoked,
    #[error("wrong kind of token: expected a {expected} token")]
    WrongTokenKind { expected: &'static str },
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
            AccountError::UnknownAccount(_) => "unknown_account",
            AccountError::WrongPassword { .. } => "wrong_password",
            AccountError::Locked { .. } => "locked",
            AccountError::TokenUnknown => "token_unknown",
            AccountError::TokenExpired => "token_expired",
            AccountError::TokenRevoked => "token_revoked",
            AccountError::WrongTokenKind { .. } => "wrong_token_kind",
            AccountError::Storage(_) => "storage",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
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
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// argon2id with the crate's defaults (OWASP: 19 MiB, 2 passes), off the
/// async threads: a hash takes tens of milliseconds on purpose.
async fn hash_password(password: String) -> String {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&hearth_proto::os_seed()[..16]).expect("16-byte salt");
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 accepts any password up to 4 GiB")
            .to_string()
    })
    .await
    .expect("hashing does not panic")
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

impl Accounts {
    pub fn new(storage: Storage, config: AccountsConfig) -> Self {
        Self { storage, config }
    }

    pub async fn register(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        validate_name(name)?;
        validate_password(password)?;
        let key = name.to_lowercase();
        let taken = sqlx::query("SELECT id FROM accounts WHERE name_key = $1")
            .bind(&key)
            .fetch_optional(&self.storage.pool)
            .await?;
        if taken.is_some() {
            return Err(AccountError::NameTaken(name.to_owned()));
        }
        let hash = hash_password(password.to_owned()).await;
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
            }),
            // Two registrations raced past the check: the unique index decides.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AccountError::NameTaken(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a name and password, counting failures and locking the account
    /// after too many in a row.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        let row = sqlx::query(
            "SELECT id, name, password_hash, failed_logins, locked_until FROM accounts WHERE name_key = $1",
        )
        .bind(name.to_lowercase())
        .fetch_optional(&self.storage.pool)
        .await?
        .ok_or_else(|| AccountError::UnknownAccount(name.to_owned()))?;
        let id: i64 = row.try_get("id")?;
        let stored_name: String = row.try_get("name")?;
        let hash: String = row.try_get("password_hash")?;
        let failed: i64 = row.try_get("failed_logins")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        let now = now_ms();
        if locked_until > now {
            return Err(AccountError::Locked {
                seconds: ((locked_until - now) as u64).div_ceil(1000),
            });
        }
        if verify_password(password.to_owned(), hash).await {
            if failed != 0 {
                sqlx::query("UPDATE accounts SET failed_logins = 0 WHERE id = $1")
                    .bind(id)
                    .execute(&self.storage.pool)
                    .await?;
            }
            return Ok(Account {
                id,
                name: stored_name,
            });
        }
        let failed = failed + 1;
        let limit = i64::from(self.config.max_failed_logins.max(1));
        if failed >= limit {
            let until = now + (self.config.lock_secs * 1000) as i64;
            sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until = $1 WHERE id = $2")
                .bind(until)
                .bind(id)
                .execute(&self.storage.pool)
                .await?;
            return Err(AccountError::Locked {
                seconds: self.config.lock_secs,
            });
        }
        sqlx::query("UPDATE accounts SET failed_logins = $1 WHERE id = $2")
            .bind(failed)
            .bind(id)
            .execute(&self.storage.pool)
            .await?;
        Err(AccountError::WrongPassword {
            remaining: (limit - failed) as u32,
        })
    }

    /// Logs in with a password and issues a token pair.
    pub async fn login(&self, name: &str, password: &str) -> Result<TokenPair, AccountError> {
        let account = self.authenticate(name, password).await?;
        self.issue(&account).await
    }

    /// Changes the password; every token of the account is revoked.
    pub async fn change_password(
        &self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        validate_password(new)?;
        let account = self.authenticate(name, old).await?;
        let hash = hash_password(new.to_owned()).await;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(account.id)
            .execute(&self.storage.pool)
            .await?;
        self.revoke_all(account.id).await
    }

    async fn issue(&self, account: &Account) -> Result<TokenPair, AccountError> {
        let now = now_ms();
        let access = new_token();
        let refresh = new_token();
        let ttl = |secs: u64| now + (secs * 1000) as i64;
        let mut tx = self.storage.pool.begin().await?;
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
            "SELECT t.kind, t.expires_at, t.revoked, a.id, a.name FROM tokens t \
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
        };
        if revoked != 0 {
            if kind == REFRESH {
                // A rotated-out refresh token came back: someone copied it.
                // End every session of the account (OAuth 2.0 BCP, 4.14).
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

    /// Trades a refresh token for a new pair; the old refresh token is revoked.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AccountError> {
        let account = self.check_token(refresh_token, REFRESH).await?;
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE hash = $1")
            .bind(hash_token(refresh_token))
            .execute(&self.storage.pool)
            .await?;
        self.issue(&account).await
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
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE account_id = $1")
            .bind(account_id)
            .execute(&self.storage.pool)
            .await?;
        Ok(())
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

fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hearth_proto::os_seed())
}
