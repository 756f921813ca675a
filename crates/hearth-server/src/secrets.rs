//! Secrets generated on first start and kept in the data directory. There is
//! never a built-in default key.

use std::path::Path;

use hearth_proto::ServerIdentity;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a 32-byte key ({len} bytes): restore it from a backup or delete it to make a new one (clients that pinned the old key will refuse the new)")]
    Corrupt { path: String, len: usize },
}

/// Loads the server's static key (`server.key`), creating it if missing.
/// Returns the identity and whether it was just created.
pub fn server_identity(data_dir: &Path) -> Result<(ServerIdentity, bool), SecretError> {
    let path = data_dir.join("server.key");
    let shown = path.display().to_string();
    let io = |source| SecretError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::Corrupt {
                    path: shown.clone(),
                    len: bytes.len(),
                })?;
            Ok((ServerIdentity::from_bytes(key), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::private_files::create_private_dir(data_dir).map_err(io)?;
            let identity = ServerIdentity::generate(hearth_proto::os_seed());
            // A crash while writing must not leave a torn key behind: the
            // next start would refuse it, or worse, clients would pin it.
            crate::private_files::write_atomically(&path, &identity.to_bytes()).map_err(io)?;
            Ok((identity, true))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_then_reused_and_private() {
        let dir = std::env::temp_dir().join(format!("hearth-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, created) = server_identity(&dir).unwrap();
        assert!(created);
        let (second, created) = server_identity(&dir).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), second.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("server.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join("server.key"), b"short").unwrap();
        assert!(matches!(
            server_identity(&dir),
            Err(SecretError::Corrupt { len: 5, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
