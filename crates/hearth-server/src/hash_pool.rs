//! Password hashing on a fixed set of worker threads with a bounded queue.
//!
//! An argon2id hash takes tens of milliseconds and 19 MiB on purpose. Giving
//! every request its own blocking thread let 400 concurrent registrations
//! take the server to 14 GB: here at most `workers` hashes run at once (one
//! per core by default), at most `queue` wait, and anything beyond is refused
//! at once with [`PoolFull`] so the caller can answer "busy, retry".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Every hash slot and queue entry is taken: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all password hashing workers are busy and the queue is full")]
pub struct PoolFull;

/// A hash of a random password with the same parameters as real ones, so that
/// checking a password against an unknown account costs what a real check
/// costs and the answer's timing does not tell which names exist.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

enum Work {
    Hash {
        password: String,
        reply: oneshot::Sender<String>,
    },
    Verify {
        password: String,
        /// `None`: verify against [`DUMMY_HASH`] (and fail).
        hash: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// Work with its admission: the slot is given back when the worker is done.
struct Job {
    work: Work,
    slot: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Counters {
    computed: AtomicU64,
    refused: AtomicU64,
}

/// A handle to the pool; clones share the workers. The workers stop when the
/// last handle is dropped.
#[derive(Clone)]
pub struct HashPool {
    jobs: Sender<Job>,
    /// One permit per worker plus one per queue entry: holding one means a
    /// worker will run the job, so the channel itself never grows past it.
    slots: Arc<Semaphore>,
    counters: Arc<Counters>,
    workers: usize,
}

/// A reserved place in the pool: the hash it is spent on will run. Taken
/// before anything that must not happen unless the hash runs (a login
/// attempt is counted against the account only once its hash is sure to run).
pub struct Admission {
    pool: HashPool,
    slot: OwnedSemaphorePermit,
}

impl HashPool {
    /// Starts `workers` threads (0: one per core) with room for `queue`
    /// waiting jobs.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let (jobs, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let counters = Arc::new(Counters::default());
        for index in 0..workers {
            let receiver = receiver.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("hearth-hash-{index}"))
                .spawn(move || {
                    let mut worker = Worker { blocks: Vec::new() };
                    loop {
                        // The lock is held only while waiting for the next
                        // job, never while hashing.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        let Ok(Job { work, slot }) = job else { return };
                        worker.run(work, slot, &counters);
                    }
                })
                .expect("the OS lets us start a hashing thread");
        }
        Self {
            jobs,
            slots: Arc::new(Semaphore::new(workers + queue)),
            counters,
            workers,
        }
    }

    /// Reserves a place for one hash, or refuses at once when every worker
    /// is busy and the queue is full.
    pub fn admit(&self) -> Result<Admission, PoolFull> {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                pool: self.clone(),
                slot,
            }),
            Err(_) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Err(PoolFull)
            }
        }
    }

    /// Hashes a new password (argon2id, random salt) into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PoolFull> {
        Ok(self.admit()?.hash(password).await)
    }

    /// Hashes computed (new hashes and verifications, dummy ones included).
    pub fn computed(&self) -> u64 {
        self.counters.computed.load(Ordering::Relaxed)
    }

    /// Hashes refused because every worker was busy and the queue was full.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }
}

impl Admission {
    /// Hashes a new password (argon2id, random salt) into a PHC string.
    pub async fn hash(self, password: String) -> String {
        let (reply, answer) = oneshot::channel();
        self.run(Work::Hash { password, reply });
        answer
            .await
            .expect("a hashing worker answers every job it takes")
    }

    /// True when `password` matches `hash`. With `None`, checks against a
    /// dummy hash: the same work, always false.
    pub async fn verify(self, password: String, hash: Option<String>) -> bool {
        let (reply, answer) = oneshot::channel();
        self.run(Work::Verify {
            password,
            hash,
            reply,
        });
        answer.await.unwrap_or(false)
    }

    fn run(self, work: Work) {
        let job = Job {
            work,
            slot: self.slot,
        };
        // The receiver lives as long as a worker thread does, and workers
        // stop only when every sender is gone; this one is still here.
        let _ = self.pool.jobs.send(job);
    }
}

/// One worker's argon2 memory, allocated once and reused for every hash.
/// Allocating 19 MiB per hash looks harmless, but once the first such buffer
/// is freed glibc raises its mmap threshold and serves the next ones from
/// arenas that keep them resident: measured, about eight buffers (150 MiB)
/// per thread. A buffer per worker keeps memory at workers × 19 MiB.
struct Worker {
    blocks: Vec<Block>,
}

impl Worker {
    /// Does `work`, then gives `slot` back before answering, so that whoever
    /// gets the answer finds the slot free again.
    fn run(&mut self, work: Work, slot: OwnedSemaphorePermit, counters: &Counters) {
        match work {
            Work::Hash { password, reply } => {
                // The asker went away while queued: nobody will read the answer.
                if reply.is_closed() {
                    return;
                }
                let hashed = self.hash(password.as_bytes());
                counters.computed.fetch_add(1, Ordering::Relaxed);
                drop(slot);
                let _ = reply.send(hashed);
            }
            Work::Verify {
                password,
                hash,
                reply,
            } => {
                if reply.is_closed() {
                    return;
                }
                let matches = match hash {
                    Some(hash) => self.verify(password.as_bytes(), &hash),
                    None => {
                        let dummy = DUMMY_HASH.get_or_init(|| self.hash(&hearth_proto::os_seed()));
                        let _ = self.verify(password.as_bytes(), dummy);
                        false
                    }
                };
                counters.computed.fetch_add(1, Ordering::Relaxed);
                drop(slot);
                let _ = reply.send(matches);
            }
        }
    }

    /// argon2id with the crate's defaults (OWASP: 19 MiB, 2 passes) and a
    /// random salt, as a PHC string.
    fn hash(&mut self, password: &[u8]) -> String {
        let salt = SaltString::encode_b64(&hearth_proto::os_seed()[..16]).expect("16-byte salt");
        self.compute(
            password,
            Algorithm::Argon2id,
            Version::default(),
            Params::default(),
            salt.as_salt(),
        )
        .expect("argon2 accepts any password up to 4 GiB with its default parameters")
        .to_string()
    }

    /// Recomputes `hash` (with the parameters it names) for `password` and
    /// compares in constant time. A malformed stored hash matches nothing.
    fn verify(&mut self, password: &[u8], hash: &str) -> bool {
        self.try_verify(password, hash).unwrap_or(false)
    }

    fn try_verify(&mut self, password: &[u8], hash: &str) -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let computed = self.compute(password, algorithm, version, params, salt)?;
        // `Output`'s equality is constant-time.
        Ok(computed.hash == Some(expected))
    }

    fn compute<'a>(
        &mut self,
        password: &[u8],
        algorithm: Algorithm,
        version: Version,
        params: Params,
        salt: Salt<'a>,
    ) -> password_hash::Result<PasswordHash<'a>> {
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let blocks = params.block_count();
        if self.blocks.len() < blocks {
            self.blocks.resize(blocks, Block::default());
        }
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let memory = &mut self.blocks[..blocks];
        let output = Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_count() {
        let pool = HashPool::new(1, 4);
        let hashed = pool.hash("correct horse".into()).await.unwrap();
        assert!(hashed.starts_with("$argon2id$"));
        let verify = |password: &str, hash: Option<String>| {
            pool.admit().unwrap().verify(password.to_owned(), hash)
        };
        assert!(verify("correct horse", Some(hashed.clone())).await);
        assert!(!verify("wrong horse", Some(hashed)).await);
        assert!(!verify("correct horse", None).await);
        // Compatible with the stock argon2 code both ways: hashes stored by
        // earlier versions still verify.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = pool.hash("battery staple".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"battery staple", &parsed)
            .is_ok());
        let salt = SaltString::encode_b64(&[7; 16]).unwrap();
        let stock = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify("battery staple", Some(stock.clone())).await);
        assert!(!verify("battery stapler", Some(stock)).await);
        assert!(!verify("battery staple", Some("not a hash".into())).await);
        assert_eq!(pool.computed(), 8);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_growing() {
        let pool = HashPool::new(1, 2);
        // One worker and two queue entries: three admissions, then refusals.
        let held: Vec<Admission> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert!(pool.admit().is_err());
        assert!(pool.hash("refused".into()).await.is_err());
        assert_eq!(pool.refused(), 2);
        // Spending an admission gives its slot back once the hash is done.
        let mut held = held.into_iter();
        held.next().unwrap().hash("first".into()).await;
        pool.hash("again".into()).await.unwrap();
        // Dropping an unspent admission gives its slot back too.
        drop(held);
        let all: Vec<Admission> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert!(pool.admit().is_err());
        drop(all);
        assert_eq!(pool.computed(), 2);
    }
}
