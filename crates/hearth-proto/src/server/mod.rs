//! The server endpoint: answers handshakes statelessly, owns the sessions,
//! routes datagrams and stream packets to them, and keeps their timers.
//!
//! `datagrams` holds the UDP handshake and routing, `streams` the stream
//! table and the stream key agreement; this file the session table, timers
//! and the application's interface.

mod datagrams;
mod shards;
mod streams;
mod wheel;

pub use shards::{shard_of_session, Shard, ShardSet, MAX_SHARDS};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};

pub use crate::address_limit::AddressPrefix;
use crate::address_limit::SitePrefix;

use crate::config::ServerConfig;
use crate::cookie::CookieSecrets;
use crate::crypto::SessionKeys;
use crate::event::{Event, Transmit};
use crate::link::Role;
use crate::session::login::Welcome;
use crate::session::{ChannelSpec, Outbox, SendError, Session};
use crate::stats::{DropReason, EndpointStats};
use streams::StreamTable;
use wheel::TimerWheel;

/// The server's long-term X25519 key. Clients may pin its public half.
#[derive(Clone)]
pub struct ServerIdentity {
    secret: StaticSecret,
}

impl ServerIdentity {
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self {
            secret: StaticSecret::from(secret),
        }
    }

    pub fn generate(seed: [u8; 32]) -> Self {
        Self {
            secret: StaticSecret::random_from_rng(ChaCha20Rng::from_seed(seed)),
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }
}

/// How much the server holds, for proving that floods cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    pub sessions: usize,
    pub completed_handshakes: usize,
    pub pending_streams: usize,
    /// Login deadlines queued for streams (some already gone, until compacted).
    pub pending_stream_deadlines: usize,
    pub queued_transmits: usize,
    pub queued_events: usize,
    pub timers: usize,
    /// Addresses (IPv6: /64 prefixes) with sessions still logging in.
    pub logging_in_addresses: usize,
    /// Entries in the key-agreement rate tables (bounded).
    pub rate_limited_addresses: usize,
}

/// A Response already answered: a resent or replayed copy gets the same Ack
/// and never a second session, for as long as its cookie could be accepted.
struct CompletedHandshake {
    ack: Vec<u8>,
    expires: Instant,
    /// The cookie's timestamp (server milliseconds), for the replay floor.
    cookie_timestamp: u64,
}

pub struct Server {
    config: ServerConfig,
    epoch: Instant,
    rng: ChaCha20Rng,
    identity: ServerIdentity,
    identity_public: [u8; 32],
    cookies: CookieSecrets,
    /// Drives the cookie secrets' rotation, seeded alike in every shard so
    /// that all shards hold the same secrets.
    cookie_rng: ChaCha20Rng,
    /// This server's place among the gate's shards, and what they share:
    /// the session cap and the per-address limits.
    shard: Shard,
    sessions: HashMap<u64, Session>,
    completed: HashMap<[u8; 32], CompletedHandshake>,
    completed_order: VecDeque<(Instant, [u8; 32])>,
    /// Responses with cookies minted at or before this are refused: a
    /// handshake that old may have been forgotten while the table was full.
    completed_floor: Option<u64>,
    streams: StreamTable,
    /// Each session's next deadline, in milliseconds from the epoch
    /// (rounded up, so that a session is never woken before it has work).
    timers: TimerWheel,
    scheduled: HashMap<u64, u64>,
    /// Sessions due in this `handle_timeout`, kept between calls so a
    /// wakeup allocates nothing.
    due: Vec<u64>,
    due_entries: Vec<(u64, u64)>,
    /// Sessions whose flush waits for the next `poll_transmit` (see
    /// `Session::defer_flush`): not a timer, since a driver polls for
    /// transmits after every input and send, and a timer would fire before it
    /// has delivered the events whose replies should share the packets. A
    /// session is listed once per deferral (again only if a direct flush,
    /// such as opening a channel, ended the first), so this is bounded by
    /// the session operations since the driver last polled: one input burst
    /// in the gate. The memory is reused.
    deferred_flushes: Vec<u64>,
    out: Outbox,
    stats: EndpointStats,
    scratch: Vec<u8>,
}

impl Server {
    pub fn new(
        config: ServerConfig,
        identity: ServerIdentity,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut cookie_seed = [0u8; 32];
        rng.fill_bytes(&mut cookie_seed);
        let set = ShardSet::new(1, &config, cookie_seed);
        Self::with_rng(config, identity, now, rng, Shard { index: 0, set })
    }

    /// One shard of a gate. Every shard of `shard.set` must be made with the
    /// same `now` (their cookie secrets rotate on one schedule from it) and
    /// the same identity; `seed` is this shard's own.
    pub fn new_shard(
        config: ServerConfig,
        identity: ServerIdentity,
        now: Instant,
        seed: [u8; 32],
        shard: Shard,
    ) -> Self {
        Self::with_rng(config, identity, now, ChaCha20Rng::from_seed(seed), shard)
    }

    fn with_rng(
        config: ServerConfig,
        identity: ServerIdentity,
        now: Instant,
        rng: ChaCha20Rng,
        shard: Shard,
    ) -> Self {
        let mut cookie_rng = ChaCha20Rng::from_seed(shard.set.cookie_seed());
        let cookies = CookieSecrets::new(&mut cookie_rng, 0);
        let identity_public = identity.public_key();
        Self {
            config,
            epoch: now,
            rng,
            identity,
            identity_public,
            cookies,
            cookie_rng,
            shard,
            sessions: HashMap::new(),
            completed: HashMap::new(),
            completed_order: VecDeque::new(),
            completed_floor: None,
            streams: StreamTable::default(),
            timers: TimerWheel::default(),
            scheduled: HashMap::new(),
            due: Vec::new(),
            due_entries: Vec::new(),
            deferred_flushes: Vec::new(),
            out: Outbox::default(),
            stats: EndpointStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.identity_public
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    pub fn session(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn session_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.sessions.keys().copied()
    }

    /// Sessions this shard holds, detached ones included; constant time, so
    /// the gate can publish it as often as it likes whatever the count.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions held by every shard of the gate together (exact).
    pub fn total_sessions(&self) -> usize {
        self.shard.set.sessions()
    }

    /// This server's shard and the set it belongs to.
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    pub fn state_size(&self) -> StateSize {
        let limits = self.shard.set.limits();
        StateSize {
            sessions: self.sessions.len(),
            completed_handshakes: self.completed.len(),
            pending_streams: self.streams.pending_len(),
            pending_stream_deadlines: self.streams.deadlines_len(),
            queued_transmits: self.out.transmits.len(),
            queued_events: self.out.events.len(),
            timers: self.timers.len(),
            logging_in_addresses: limits.logging_in.entries(),
            rate_limited_addresses: limits.agreements.entries() + limits.site_agreements.entries(),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// A deadline in the timers' milliseconds, rounded up.
    fn deadline_ms(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        let ms = since.as_millis() as u64;
        if since > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.stats.drops.add(reason);
    }

    /// Queues a stateless reply, unless the queue is full.
    fn reply(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.out.transmits.len() >= self.config.max_queued_replies {
            self.count_drop(DropReason::ReplyQueueFull);
            return;
        }
        self.out
            .transmits
            .push_back(Transmit::Datagram { to, bytes });
    }

    /// Whether the per-address limits apply to `from`.
    fn limits_apply(&self, from: SocketAddr) -> bool {
        self.config.limit_loopback || !crate::address_limit::is_loopback(from.ip())
    }

    /// The login-slot limit for `from` (unlimited where limits do not apply).
    fn logging_in_limit(&self, from: SocketAddr) -> u32 {
        if self.limits_apply(from) {
            self.config.max_logging_in_per_address
        } else {
            u32::MAX
        }
    }

    /// Whether `from` may start another key agreement now (counted when not).
    fn may_agree_keys(&mut self, now: Instant, from: SocketAddr) -> bool {
        if !self.limits_apply(from) {
            return true;
        }
        let prefix = AddressPrefix::of(from);
        let allowed = {
            let mut limits = self.shard.set.limits();
            limits.agreements.allow(prefix, now)
                && limits.site_agreements.allow(SitePrefix::of(prefix), now)
        };
        if !allowed {
            self.count_drop(DropReason::TooManyFromAddress);
        }
        allowed
    }

    /// The server's half of a key agreement, for datagram and stream
    /// handshakes alike: a fresh ephemeral key, both shared secrets with the
    /// client's key (`None` for a low-order key, which would make them
    /// predictable), and the session keys under `transcript`, which is given
    /// the server's ephemeral public key.
    fn agree_keys(
        &mut self,
        client_public: [u8; 32],
        attach_secret: Option<&[u8; 32]>,
        transcript: impl FnOnce(&[u8; 32]) -> [u8; 32],
    ) -> Option<(SessionKeys, [u8; 32])> {
        let ephemeral = StaticSecret::random_from_rng(&mut self.rng);
        let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
        let client_key = PublicKey::from(client_public);
        let ephemeral_dh = ephemeral.diffie_hellman(&client_key);
        let static_dh = self.identity.secret.diffie_hellman(&client_key);
        if !ephemeral_dh.was_contributory() || !static_dh.was_contributory() {
            return None;
        }
        let keys = SessionKeys::derive(
            ephemeral_dh.as_bytes(),
            static_dh.as_bytes(),
            attach_secret,
            &transcript(&ephemeral_public),
        );
        Some((keys, ephemeral_public))
    }

    /// A random id naming this shard, not held by any session of it (the
    /// other shards' ids name other shards, so they cannot collide).
    fn fresh_session_id(&mut self) -> u64 {
        loop {
            let id = shards::tag_session_id(
                self.rng.next_u64(),
                self.shard.index,
                self.shard.set.count(),
            );
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// A new server-side session; `logging_in` is the address slot it holds
    /// until the login is accepted. False, and nothing made, when the gate's
    /// session cap is reached (counted across every shard).
    #[must_use]
    fn create_session(&mut self, now: Instant, id: u64, logging_in: AddressPrefix) -> bool {
        if !self.shard.set.reserve_session() {
            return false;
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut session = Session::new(Role::Server, id, self.config.session.clone(), now, seed);
        session.logging_in_from = Some(logging_in);
        self.stats.sessions_opened += 1;
        self.sessions.insert(id, session);
        true
    }

    // ---- driver interface ----------------------------------------------------

    /// The next datagram or stream packet to send. Call it until `None`
    /// after handling input, delivering events and sending: sessions flush
    /// here what those left them, so that a reply the game sends while
    /// handling an event shares packets with the acknowledgement of the
    /// input that caused it.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.deferred_flushes.is_empty() {
            self.flush_deferred();
        }
        let transmit = self.out.transmits.pop_front()?;
        if let Transmit::Datagram { bytes, .. } = &transmit {
            self.stats.datagrams_out += 1;
            self.stats.bytes_out += bytes.len() as u64;
        }
        Some(transmit)
    }

    pub fn poll_event(&mut self) -> Option<(u64, Event)> {
        self.out.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let rotation = self.epoch + Duration::from_millis(self.cookies.next_rotation_ms());
        let mut earliest = rotation;
        if let Some(at) = self.timers.next_deadline() {
            earliest = earliest.min(self.epoch + Duration::from_millis(at));
        }
        if let Some(at) = self
            .streams
            .next_deadline(self.config.session.login_step_timeout)
        {
            earliest = earliest.min(at);
        }
        if let Some((at, _)) = self.completed_order.front() {
            earliest = earliest.min(*at);
        }
        Some(earliest)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.now_ms(now);
        self.cookies.maintain(&mut self.cookie_rng, now_ms);
        self.expire_pending_streams(now);
        while let Some((expires, mac)) = self.completed_order.front().copied() {
            if now < expires {
                break;
            }
            self.completed_order.pop_front();
            if self.completed.get(&mac).is_some_and(|c| c.expires <= now) {
                self.completed.remove(&mac);
            }
        }
        // Collect first, so a session due again at once waits for the next call
        // instead of spinning here.
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        let mut entries = std::mem::take(&mut self.due_entries);
        entries.clear();
        self.timers.advance(now_ms, &mut entries);
        for &(at, id) in &entries {
            if self.scheduled.get(&id) == Some(&at) {
                self.scheduled.remove(&id);
                due.push(id);
            }
            // Otherwise superseded by an earlier deadline.
        }
        self.due_entries = entries;
        for &id in &due {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.on_timeout(now, &mut self.out);
            }
            self.touch(now, id);
        }
        self.due = due;
        if self.timers.len() > 8 * self.sessions.len() + 1024 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        self.timers.clear();
        for (&id, at) in self.scheduled.iter_mut() {
            *at = self.timers.insert(*at, id);
        }
    }

    /// The flushes sessions deferred since the last poll, each at the time
    /// it was asked for; their timers follow what the flush left due.
    fn flush_deferred(&mut self) {
        let mut listed = std::mem::take(&mut self.deferred_flushes);
        for &id in &listed {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            let Some(asked) = session.deferred_flush() else {
                continue;
            };
            session.flush_if_deferred(&mut self.out);
            self.touch(asked, id);
        }
        listed.clear();
        // Flushes list nothing new: the session list's memory is reused.
        debug_assert!(self.deferred_flushes.is_empty());
        self.deferred_flushes = listed;
    }

    /// After anything touched a session: drop it if closed, free its address
    /// slot once welcomed, else (re)arm its timer.
    fn touch(&mut self, now: Instant, id: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.is_closed() {
            self.remove_session(id);
            return;
        }
        if session.logging_in_from.is_some() && session.login_welcomed() {
            let prefix = session.logging_in_from.take().expect("checked");
            self.shard.set.limits().logging_in.release(prefix);
        }
        if session.take_unlisted_flush() {
            self.deferred_flushes.push(id);
        }
        if session.deferred_flush().is_some() {
            // Its timer is set after the flush: what is due now (an ack, a
            // KCP flush) is what the flush will do.
            return;
        }
        let Some(deadline) = session.next_deadline() else {
            return;
        };
        let deadline = self.deadline_ms(deadline.max(now));
        let now_ms = self.now_ms(now);
        match self.scheduled.get(&id) {
            Some(&at) if at <= deadline && at > now_ms => {}
            _ => {
                // The wheel may move a deadline it has already passed up to
                // its own time (a deferred flush touches a session with the
                // time it was asked for, after a later `handle_timeout`):
                // remember the deadline the entry will fire with, or the
                // entry would look superseded and the session never wake.
                let at = self.timers.insert(deadline, id);
                self.scheduled.insert(id, at);
            }
        }
    }

    fn remove_session(&mut self, id: u64) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.shard.set.release_session();
        self.stats.sessions_closed += 1;
        self.stats.drops.merge(&session.stats.drops);
        if let Some(prefix) = session.logging_in_from {
            self.shard.set.limits().logging_in.release(prefix);
        }
        self.scheduled.remove(&id);
        self.streams.forget_session(id);
        // `completed` keeps its entries until their cookies expire: a replayed
        // Response must get the old Ack, not open a new session.
    }

    // ---- application interface ----------------------------------------------

    fn with_session<T>(
        &mut self,
        now: Instant,
        id: u64,
        act: impl FnOnce(&mut Session, &mut Outbox) -> T,
    ) -> Option<T> {
        let session = self.sessions.get_mut(&id)?;
        let result = act(session, &mut self.out);
        self.touch(now, id);
        Some(result)
    }

    pub fn send(
        &mut self,
        now: Instant,
        id: u64,
        channel: u16,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.send(now, channel, payload, out))
            .unwrap_or(Err(SendError::Closed))
    }

    /// Stops delivering the session's reliable messages (and acknowledging
    /// them, so its peer stops sending at its unacknowledged limit) until
    /// [`Server::resume_receive`]: for an application whose queue is full.
    /// False if there is no such session.
    pub fn pause_receive(&mut self, now: Instant, id: u64) -> bool {
        self.with_session(now, id, |s, _| s.pause_receive())
            .is_some()
    }

    /// Delivers up to `max` of the messages held since
    /// [`Server::pause_receive`], in order (as events), and acknowledges
    /// them; receiving resumes once none is left. True when it did (or
    /// there is no such session); false while messages are still held.
    pub fn resume_receive(&mut self, now: Instant, id: u64, max: usize) -> bool {
        self.with_session(now, id, |s, out| s.resume_receive(now, max, out))
            .unwrap_or(true)
    }

    pub fn open_channel(
        &mut self,
        now: Instant,
        id: u64,
        channel: u16,
        spec: ChannelSpec,
    ) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.open_channel(now, channel, spec, out))
            .unwrap_or(Err(SendError::Closed))
    }

    pub fn close_channel(&mut self, now: Instant, id: u64, channel: u16) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.close_channel(now, channel, out))
            .unwrap_or(Err(SendError::Closed))
    }

    /// The pre-login hook accepts: Welcome goes out naming `map` (or the default).
    pub fn accept_login(&mut self, now: Instant, id: u64, map: Option<&str>) -> bool {
        let welcome = Welcome {
            map: map.unwrap_or(&self.config.default_map).to_owned(),
            ticket_port: self.config.udp_ticket_port,
            server_key: self.identity_public,
        };
        self.with_session(now, id, |s, out| s.accept_login(now, welcome, out))
            .unwrap_or(false)
    }

    /// The pre-login hook refuses: the client gets Failure with `reason`.
    pub fn refuse_login(&mut self, now: Instant, id: u64, reason: &str) -> bool {
        self.with_session(now, id, |s, out| s.refuse_login(now, reason, out))
            .unwrap_or(false)
    }

    /// Graceful close (use `close_code::KICKED` to kick).
    pub fn close(&mut self, now: Instant, id: u64, code: u16, reason: &str) {
        self.with_session(now, id, |s, out| s.close(now, code, reason, out));
    }
}
