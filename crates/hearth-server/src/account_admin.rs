//! Administration of accounts: roles (who may use /admin), the
//! administrator's lock (who may not log in at all), and deletion by the
//! owner (load-test bots clean up after themselves this way).

use hearth_world::names::name_key;
use sqlx::Row;

use crate::accounts::{Account, AccountError, Accounts, Role};

impl Accounts {
    /// The account's role and whether an administrator locked it.
    pub(crate) async fn role_and_disabled(&self, id: i64) -> Result<(Role, bool), AccountError> {
        let row = sqlx::query("SELECT role, disabled FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_one(&self.storage().pool)
            .await?;
        Ok((
            Role::parse(&row.try_get::<String, _>("role")?),
            row.try_get::<i64, _>("disabled")? != 0,
        ))
    }

    /// Gives the named account a role. Errs with `WrongCredentials` when no
    /// such account exists (the caller is trusted: an operator or an admin).
    pub async fn set_role(&self, name: &str, role: Role) -> Result<(), AccountError> {
        let changed = sqlx::query("UPDATE accounts SET role = $1 WHERE name_key = $2")
            .bind(role.as_str())
            .bind(name_key(name))
            .execute(&self.storage().pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(AccountError::WrongCredentials);
        }
        Ok(())
    }

    /// The id of the account named `name` (compared as every name is, see
    /// `hearth_world::names`), if there is one.
    pub(crate) async fn id_of(&self, name: &str) -> Result<Option<i64>, AccountError> {
        let row = sqlx::query("SELECT id FROM accounts WHERE name_key = $1")
            .bind(name_key(name))
            .fetch_optional(&self.storage().pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("id")?),
            None => None,
        })
    }

    /// Locks (or unlocks) account `id`. Locking revokes every token in the
    /// same transaction, so no refresh can bring it back; the caller also
    /// ends its sessions. Errs with `WrongCredentials` when no such account
    /// exists (deleted meanwhile).
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> Result<(), AccountError> {
        let mut tx = self.storage().pool.begin().await?;
        let changed = sqlx::query("UPDATE accounts SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(AccountError::WrongCredentials);
        }
        if disabled {
            sqlx::query("UPDATE tokens SET revoked = 1 WHERE account_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates an administrator, or (`promote`) makes an existing account one.
    pub async fn create_admin(
        &self,
        name: &str,
        password: Option<&str>,
        promote: bool,
    ) -> Result<(), AccountError> {
        match password {
            Some(password) => match self.register(name, password).await {
                Ok(_) => {}
                Err(AccountError::NameTaken(_)) if promote => {}
                Err(e) => return Err(e),
            },
            None if promote => {}
            None => {
                return Err(AccountError::WeakPassword(
                    "a new administrator needs a password",
                ))
            }
        }
        self.set_role(name, Role::Admin).await
    }
}

impl Accounts {
    /// Deletes the account after checking its password (a guess like any
    /// login: counted, rate-limited by the caller, locked after too many):
    /// its tokens, its saved place and the account itself, in one
    /// transaction. Returns the deleted account.
    pub async fn delete(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        let account = self.authenticate(name, password).await?;
        let mut tx = self.storage().pool.begin().await?;
        for table in ["tokens", "players", "game_players"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(account.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(account)
    }
}
