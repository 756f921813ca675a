//! Files only the server's own user may read: the data directory, the
//! database and the server key. Modes are set explicitly after creation, so
//! they do not depend on the umask the server was started with.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Creates `dir` (and its parents) if missing; a directory created here is
/// private (0700). An existing directory is left as its owner made it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes `path` readable and writable by its owner alone (0600).
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `path` empty and private if it does not exist; makes it private
/// if it does.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    drop(options.open(path)?);
    restrict_to_owner(path)
}

/// Writes `bytes` to `path` so that after a crash or power loss the file is
/// either absent or complete, never torn: a private temporary file in the
/// same directory is written and flushed, renamed over `path`, and the
/// directory is flushed so the rename itself is on disk.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut temporary_name = name.to_owned();
    temporary_name.push(".tmp");
    let temporary = dir.join(temporary_name);
    // Left over from a crash in the middle of an earlier write.
    match std::fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    restrict_to_owner(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_whole_private_and_replace_the_old_one() {
        let dir = std::env::temp_dir().join(format!("hearth-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir.join("inner")).unwrap();
        assert_eq!(mode(&dir.join("inner")), 0o700);
        let path = dir.join("inner").join("secret");
        // A stale temporary file from a crash does not get in the way.
        std::fs::write(dir.join("inner").join("secret.tmp"), b"torn").unwrap();
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(mode(&path), 0o600);
        assert!(!dir.join("inner").join("secret.tmp").exists());
        let other = dir.join("other");
        std::fs::write(&other, b"x").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&other).unwrap();
        assert_eq!(
            (mode(&other), std::fs::read(&other).unwrap()),
            (0o600, b"x".to_vec())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
