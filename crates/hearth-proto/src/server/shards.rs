//! Gate shards: the sessions split over several `Server`s, one per core, the
//! way quinn routes by connection id. A session's id names its shard (the top
//! byte), so every datagram, Attach handshake, Restart response and stream
//! resume that names a session is routed by reading a header, without a
//! shared lock. What must stay exact across shards is shared: the session
//! cap (one atomic counter), the per-address limits (one mutex, taken on
//! handshakes and logins, never per packet) and the cookie secrets (each
//! shard holds the same ones, derived from one seed on one schedule, so any
//! shard answers an Initial and any can check the cookie).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::address_limit::{AddressLimit, AddressPrefix, RateLimit, SitePrefix};
use crate::config::ServerConfig;
use crate::handshake::{kind, HandshakePacket, Mode, ProtectedHeader};
use crate::stream_handshake::StreamHandshake;

/// Addresses (and IPv6 sites) whose key-agreement rate is tracked at once.
const RATE_TABLE_ENTRIES: usize = 65_536;

/// The most shards a set may have: the shard is the session id's top byte.
pub const MAX_SHARDS: usize = 256;

/// The per-address limits every shard enforces together.
pub(crate) struct SharedLimits {
    /// Sessions and pending streams not yet welcomed, per client address.
    pub logging_in: AddressLimit,
    /// Key agreements started, per address and per IPv6 site.
    pub agreements: RateLimit<AddressPrefix>,
    pub site_agreements: RateLimit<SitePrefix>,
}

/// What the shards of one gate share.
pub struct ShardSet {
    count: usize,
    max_sessions: usize,
    sessions: AtomicUsize,
    cookie_seed: [u8; 32],
    limits: Mutex<SharedLimits>,
}

impl ShardSet {
    /// `count` shards (1 to [`MAX_SHARDS`]) under `config`'s session cap and
    /// per-address limits; `cookie_seed` makes their common cookie secrets.
    pub fn new(count: usize, config: &ServerConfig, cookie_seed: [u8; 32]) -> Arc<Self> {
        assert!(
            (1..=MAX_SHARDS).contains(&count),
            "a gate has 1 to {MAX_SHARDS} shards, not {count}"
        );
        Arc::new(Self {
            count,
            max_sessions: config.max_sessions,
            sessions: AtomicUsize::new(0),
            cookie_seed,
            limits: Mutex::new(SharedLimits {
                logging_in: AddressLimit::default(),
                agreements: RateLimit::new(
                    config.key_agreement_burst,
                    config.key_agreements_per_second,
                    RATE_TABLE_ENTRIES,
                ),
                site_agreements: RateLimit::new(
                    config.key_agreement_burst.saturating_mul(8),
                    config.key_agreements_per_second.saturating_mul(8),
                    RATE_TABLE_ENTRIES,
                ),
            }),
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Sessions held by all shards together, exact at any moment.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    pub(crate) fn cookie_seed(&self) -> [u8; 32] {
        self.cookie_seed
    }

    /// Whether another session would fit now (a hint: `reserve_session` decides).
    pub(crate) fn has_room(&self) -> bool {
        self.sessions() < self.max_sessions
    }

    /// Takes a place for one session under the cap, or says there is none.
    pub(crate) fn reserve_session(&self) -> bool {
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max_sessions).then_some(held + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_session(&self) {
        self.sessions.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn limits(&self) -> MutexGuard<'_, SharedLimits> {
        // A panic elsewhere while holding it leaves counts, not broken
        // invariants: carry on with them.
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard that owns session `id`.
    pub fn shard_of(&self, id: u64) -> usize {
        shard_of_session(id, self.count)
    }

    /// The shard a datagram must be handled by, or `None` when the shard it
    /// landed on may: an Initial is answered statelessly wherever it lands,
    /// malformed datagrams are counted where they land, and a Response that
    /// opens a session opens it there. The kernel sends one address's
    /// datagrams to one shard's socket, so a resent or replayed Response
    /// meets the shard that remembers answering it, and the session's later
    /// datagrams arrive where it lives (its shard's socket also receives,
    /// where the kernel steers by session id, every datagram naming it).
    pub fn datagram_shard(&self, datagram: &[u8]) -> Option<usize> {
        if self.count == 1 {
            return None;
        }
        match *datagram.first()? {
            kind::PROTECTED => ProtectedHeader::decode(datagram)
                .ok()
                .map(|header| self.shard_of(header.session_id)),
            kind::RESPONSE | kind::RESTART_RESPONSE => match HandshakePacket::decode(datagram) {
                Ok(HandshakePacket::Response {
                    mode: Mode::Attach { session_id },
                    ..
                })
                | Ok(HandshakePacket::RestartResponse { session_id, .. }) => {
                    Some(self.shard_of(session_id))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The shard a stream must join, from its first packet: a resuming or
    /// attaching Hello names its session; anything else (a new session, or
    /// garbage the shard will refuse) goes to `fallback`'s shard.
    pub fn stream_shard(&self, first_packet: &[u8], fallback: u64) -> usize {
        if self.count == 1 {
            return 0;
        }
        match StreamHandshake::decode(first_packet) {
            Ok(StreamHandshake::Hello {
                mode: Mode::Attach { session_id },
                ..
            }) => self.shard_of(session_id),
            _ => (fallback % self.count as u64) as usize,
        }
    }
}

/// The shard that owns session `id` among `count`.
pub fn shard_of_session(id: u64, count: usize) -> usize {
    (id >> 56) as usize % count.max(1)
}

/// A fresh session id from 64 random bits, tagged with its shard.
pub(crate) fn tag_session_id(random: u64, shard: usize, count: usize) -> u64 {
    if count == 1 {
        random
    } else {
        (random & 0x00ff_ffff_ffff_ffff) | ((shard as u64) << 56)
    }
}

/// One shard's place in its set.
#[derive(Clone)]
pub struct Shard {
    pub index: usize,
    pub set: Arc<ShardSet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_shard() {
        for count in [1, 2, 3, 8, 256] {
            for shard in 0..count {
                for random in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
                    let id = tag_session_id(random, shard, count);
                    assert_eq!(shard_of_session(id, count), shard);
                }
            }
        }
    }

    #[test]
    fn the_session_cap_is_exact_under_concurrent_reservations() {
        let config = ServerConfig {
            max_sessions: 1000,
            ..ServerConfig::default()
        };
        let set = ShardSet::new(4, &config, [0; 32]);
        let taken: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..500).filter(|_| set.reserve_session()).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 1000);
        assert_eq!(set.sessions(), 1000);
        set.release_session();
        assert!(set.reserve_session());
        assert!(!set.reserve_session());
    }
}
