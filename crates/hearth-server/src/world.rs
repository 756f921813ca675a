//! The built-in world: its zones (the built-in ones, or a zone file named
//! by `[world] zones`), and the studio's hooks into it. It runs as a game
//! on the game API ([`hearth_world::WorldGame`]) in the game host, like any
//! other game.

use std::sync::Arc;

use hearth_world::Zone;

#[derive(Debug, thiserror::Error)]
pub enum WorldStartError {
    #[error("cannot read the zone file {path}: {source} (check [world] zones in hearth.toml)")]
    ZoneFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the zone file {path} is not valid: {source}")]
    Zones {
        path: String,
        source: hearth_world::zone::ZoneError,
    },
    #[error("cannot start the world's thread: {0}")]
    Runtime(std::io::Error),
}

/// The zones of the zone file at `path`, or the built-in ones.
pub fn load_zones(path: Option<&std::path::Path>) -> Result<Vec<Zone>, WorldStartError> {
    match path {
        None => hearth_world::parse_zone_file(hearth_world::DEFAULT_ZONES).map_err(|source| {
            WorldStartError::Zones {
                path: "(built in)".into(),
                source,
            }
        }),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| WorldStartError::ZoneFile {
                    path: path.to_owned(),
                    source,
                })?;
            hearth_world::parse_zone_file(&text).map_err(|source| WorldStartError::Zones {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

/// The studio's hooks into the built-in world.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Filters or refuses chat messages (after Hearth's own checks).
    pub chat: Option<Arc<dyn hearth_world::ChatHook>>,
}
