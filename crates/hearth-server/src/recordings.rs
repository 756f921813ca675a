//! Recordings the server makes: every message it sends to a player (or to
//! an observer of a whole line), stamped with the time, in the format
//! `hearth client --record` writes (HRTHREC1), so `hearth replay` and the
//! browser's replay page play either. An administrator starts one for a
//! set time; whoever sends the messages tees them into it, which costs
//! nothing while none is running.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whose messages a recording holds: a player's session id, or an
/// observer's number counted down from `u64::MAX`, where no session is.
pub type PlayerId = u64;
use hearth_game::record::Recorder;
use serde::Serialize;

/// Recordings running at once, at most: each holds a file and a buffer.
pub const MAX_ACTIVE: usize = 64;
/// The longest a recording may run.
pub const MAX_SECONDS: u64 = 3600;
/// Bytes one recording may write before it stops by itself.
pub const MAX_BYTES: u64 = 256 << 20;
/// Recordings kept on disk, at most, before new ones are refused (an
/// operator deletes old ones through the admin API).
pub const MAX_STORED_FILES: usize = 1000;
pub const MAX_STORED_BYTES: u64 = 4 << 30;

struct Active {
    recorder: Recorder<BufWriter<File>>,
    started: Instant,
    until: Instant,
    bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingFile {
    pub file: String,
    pub bytes: u64,
    /// Unix seconds of its last write.
    pub modified: u64,
}

/// What recording has cost so far, for the dashboard and the note.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecordingCost {
    pub active: usize,
    pub messages: u64,
    pub bytes: u64,
    /// Time the line tasks spent writing records, in microseconds.
    pub cpu_us: u64,
    /// Player-seconds recorded (each recording's length, summed).
    pub recorded_player_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{0} recordings are running already: wait for one to end")]
    TooMany(usize),
    #[error("{0} is being recorded already")]
    AlreadyRecording(String),
    #[error("a recording lasts 1 to {MAX_SECONDS} seconds")]
    BadLength,
    #[error("cannot write the recording: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Recordings {
    dir: PathBuf,
    active: AtomicUsize,
    running: Mutex<HashMap<PlayerId, Active>>,
    messages: AtomicU64,
    bytes: AtomicU64,
    nanos: AtomicU64,
    recorded_micros: AtomicU64,
    observers: AtomicU64,
}

impl Recordings {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            active: AtomicUsize::new(0),
            running: Mutex::new(HashMap::new()),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            recorded_micros: AtomicU64::new(0),
            observers: AtomicU64::new(0),
        }
    }

    /// Starts recording what `player` (named `name`) receives, for `seconds`,
    /// beginning with the records `first` (what a replay needs before the
    /// messages: the world as the player's client has it, or the game's
    /// schema). Returns the file's name in the recordings directory. Called
    /// between ticks, so no message falls between those and the first
    /// message recorded.
    pub fn start(
        &self,
        player: PlayerId,
        name: &str,
        seconds: u64,
        first: &[(u16, &[u8])],
    ) -> Result<String, RecordingError> {
        if !(1..=MAX_SECONDS).contains(&seconds) {
            return Err(RecordingError::BadLength);
        }
        let mut running = self.running.lock().expect("not poisoned");
        if running.len() >= MAX_ACTIVE {
            return Err(RecordingError::TooMany(running.len()));
        }
        if running.contains_key(&player) {
            return Err(RecordingError::AlreadyRecording(name.to_owned()));
        }
        crate::private_files::create_private_dir(&self.dir)?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        // Player names are letters, digits, '-' and '_' (accounts) or guest
        // names of the same: safe in a file name; anything else becomes '_'.
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        // A name no recording has: two of one player or line started in the
        // same millisecond must not write one file.
        let (file, opened) = (stamp..stamp + 16)
            .find_map(|stamp| {
                let file = format!("{safe}-{stamp}.hrec");
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(self.dir.join(&file)) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    opened => Some((file, opened)),
                }
            })
            .ok_or_else(|| std::io::Error::other("no free recording name"))?;
        let out = BufWriter::new(opened?);
        let now = Instant::now();
        let mut recorder = Recorder::new(out)?;
        let mut bytes = 8;
        for (channel, record) in first {
            recorder.record(0, *channel, record)?;
            bytes += 14 + record.len() as u64;
        }
        running.insert(
            player,
            Active {
                recorder,
                started: now,
                until: now + Duration::from_secs(seconds),
                bytes,
            },
        );
        self.active.store(running.len(), Ordering::Release);
        tracing::info!(player = name, file, seconds, "recording started");
        Ok(file)
    }

    /// The line tasks' hook: records the messages of recorded players.
    /// One atomic load when nothing is being recorded.
    pub fn tee(&self, sends: &[(PlayerId, u16, Vec<u8>)]) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let began = Instant::now();
        let mut running = self.running.lock().expect("not poisoned");
        let (mut messages, mut bytes) = (0u64, 0u64);
        for (player, channel, payload) in sends {
            let Some(active) = running.get_mut(player) else {
                continue;
            };
            let micros = active.started.elapsed().as_micros() as u64;
            if active.recorder.record(micros, *channel, payload).is_ok() {
                messages += 1;
                let written = 14 + payload.len() as u64;
                bytes += written;
                active.bytes += written;
            }
        }
        self.finish_due(&mut running, began);
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.nanos
            .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Ends recordings whose time is up (or that grew too big); also called
    /// periodically so a recorded player who left still gets closed.
    pub fn sweep(&self) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut running = self.running.lock().expect("not poisoned");
        self.finish_due(&mut running, Instant::now());
    }

    fn finish_due(&self, running: &mut HashMap<PlayerId, Active>, now: Instant) {
        let due: Vec<PlayerId> = running
            .iter()
            .filter(|(_, a)| now >= a.until || a.bytes >= MAX_BYTES)
            .map(|(p, _)| *p)
            .collect();
        for player in due {
            if let Some(mut active) = running.remove(&player) {
                let _ = active.recorder.flush();
                let length = now.min(active.until).duration_since(active.started);
                self.recorded_micros
                    .fetch_add(length.as_micros() as u64, Ordering::Relaxed);
            }
        }
        self.active.store(running.len(), Ordering::Release);
    }

    /// A number for a new line observer, unique in this server's life.
    pub fn next_observer_number(&self) -> u64 {
        self.observers.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_recording(&self, id: PlayerId) -> bool {
        self.active.load(Ordering::Acquire) > 0
            && self.running.lock().expect("not poisoned").contains_key(&id)
    }

    pub fn cost(&self) -> RecordingCost {
        RecordingCost {
            active: self.active.load(Ordering::Acquire),
            messages: self.messages.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            cpu_us: self.nanos.load(Ordering::Relaxed) / 1000,
            recorded_player_seconds: self.recorded_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// The recordings on disk, newest first.
    pub fn list(&self) -> std::io::Result<Vec<RecordingFile>> {
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".hrec") {
                continue;
            }
            let meta = entry.metadata()?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            files.push(RecordingFile {
                file: name,
                bytes: meta.len(),
                modified,
            });
        }
        files.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.file.cmp(&a.file)));
        Ok(files)
    }

    /// Whether the recordings on disk leave room for another (in files and
    /// in bytes); `Err` says what is full.
    pub fn room(&self) -> Result<(), String> {
        let files = self
            .list()
            .map_err(|e| format!("cannot read the recordings: {e}"))?;
        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
        if files.len() >= MAX_STORED_FILES || bytes >= MAX_STORED_BYTES {
            return Err(format!(
                "{} recordings take {} MiB: delete old ones first (at most {MAX_STORED_FILES} files, {} MiB)",
                files.len(),
                bytes >> 20,
                MAX_STORED_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Deletes a finished recording; `false` if there is none by that name.
    pub fn delete(&self, file: &str) -> std::io::Result<bool> {
        let Some(path) = self.path_of(file) else {
            return Ok(false);
        };
        std::fs::remove_file(path)?;
        Ok(true)
    }

    /// The path of a recording named by a client, only if the name is one
    /// this server could have made (no separators, no dots but the suffix).
    pub fn path_of(&self, file: &str) -> Option<PathBuf> {
        let stem = file.strip_suffix(".hrec")?;
        let plain = !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let path = self.dir.join(file);
        (plain && Path::new(&path).is_file()).then_some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_recordings_are_refused_once_the_directory_is_full_and_names_are_checked() {
        let dir = std::env::temp_dir().join(format!("hearth-recordings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let recordings = Recordings::new(dir.clone());
        assert!(recordings.room().is_ok());
        for i in 0..MAX_STORED_FILES {
            std::fs::write(dir.join(format!("p-{i}.hrec")), b"HRTHREC1").unwrap();
        }
        let full = recordings.room().unwrap_err();
        assert!(full.contains("delete old ones first"), "{full}");
        assert!(recordings.delete("p-0.hrec").unwrap());
        assert!(!recordings.delete("p-0.hrec").unwrap());
        assert!(recordings.room().is_ok());
        for sneaky in ["../p-1.hrec", "p-1", ".hrec", "p 1.hrec", "p-1.hrec/.."] {
            assert!(recordings.path_of(sneaky).is_none(), "{sneaky}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
