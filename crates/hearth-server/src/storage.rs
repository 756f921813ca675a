//! The database: embedded SQLite in the data directory by default (WAL, no
//! set-up), PostgreSQL when given a `postgres://` URL. One portable schema,
//! applied by migrations at start.

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the data directory or the database file in {path}: {source} (check that the server's user may write there)")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    Scheme(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Storage {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Storage {
    /// Opens (creating if needed) the database named by `url`, or SQLite in
    /// `data_dir` when `url` is empty, and brings its schema up to date.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let url = if url.is_empty() {
            let file = data_dir.join("hearth.db");
            create_private_database(data_dir, &file)?;
            format!("sqlite://{}?mode=rwc", file.display())
        } else {
            url.to_owned()
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StorageError::Scheme(url));
        };
        let open_error = |source| StorageError::Open {
            url: redact(&url),
            source,
        };
        let options = AnyConnectOptions::from_str(&url).map_err(open_error)?;
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a small pool avoids lock churn.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. FULL: every
                        // commit is on disk before it is acknowledged, so an
                        // acknowledged registration or password change
                        // survives a power loss too (NORMAL only survives a
                        // process crash). A commit costs one fsync of the
                        // WAL, small beside the argon2 hash before it.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// True when the database answers.
    pub async fn healthy(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Writes everything out and closes the connections (graceful shutdown).
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }
}

/// Creates the data directory and an empty database file, both private,
/// before SQLite opens it: SQLite would create the file with the umask's
/// permissions (often world-readable), and gives its -wal and -shm files the
/// database file's permissions. Files left by an older version are made
/// private too.
fn create_private_database(data_dir: &Path, file: &Path) -> Result<(), StorageError> {
    let error = |source| StorageError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    crate::private_files::create_private_dir(data_dir).map_err(error)?;
    crate::private_files::create_private_file(file).map_err(error)?;
    for suffix in ["-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let companion = std::path::PathBuf::from(name);
        if companion.exists() {
            crate::private_files::restrict_to_owner(&companion).map_err(error)?;
        }
    }
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn the_database_and_its_wal_files_are_private() {
        let dir = std::env::temp_dir().join(format!("hearth-storage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let storage = Storage::open("", &dir).await.unwrap();
        // A write, so that SQLite has made its -wal and -shm files.
        sqlx::query("INSERT INTO accounts (id, name, name_key, password_hash, created_at) VALUES (1, 'a', 'a', 'h', 0)")
            .execute(&storage.pool)
            .await
            .unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(""), 0o700, "the data directory");
        for name in ["hearth.db", "hearth.db-wal", "hearth.db-shm"] {
            assert_eq!(mode(name), 0o600, "{name}");
        }
        storage.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
