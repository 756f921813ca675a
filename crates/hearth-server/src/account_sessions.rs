//! Every logged-in session by account, kept at the gate side and shared by
//! its shards: login decisions find the session a new login replaces, and
//! a lock, a deletion or a kick ends every session of an account — in the
//! world or not (`?world=off`), joined or still waiting to join — found by
//! account id, without asking the world (which knows only the players it
//! holds, by name).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hearth_net::gate::GateHandle;
use hearth_proto::close_code;

/// How long an end bars logins whose credentials were checked before it.
/// Far longer than a login decision can take (the protocol's login step
/// timeout is seconds): a decision older than this is refused instead, so
/// forgetting an end after this long lets nothing through.
const BAR_KEPT: Duration = Duration::from_secs(60);

/// Why a login could not be bound to its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Barred {
    /// The account's sessions were ended after this login's credentials
    /// were checked (a lock or a deletion the check did not see yet).
    Ended(String),
    /// The decision took longer than an end is remembered.
    TooSlow,
}

impl Barred {
    /// What the refused client is told.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Barred::Ended(reason) => reason,
            Barred::TooSlow => "the login took too long to decide: try again",
        }
    }
}

/// The registry itself, sans IO: time is passed in.
#[derive(Default)]
pub(crate) struct Registry {
    /// Each account's live sessions, oldest first: several when
    /// `single_session` is off, and for a moment while a replaced one closes.
    by_account: HashMap<i64, Vec<u64>>,
    /// The account of each live session: a close finds its entry without a walk.
    by_session: HashMap<u64, i64>,
    /// Accounts whose sessions were ended lately, when and why: a login
    /// that passed its credential check before the end (against an account
    /// not yet locked, or not yet deleted) is refused when it comes to bind
    /// instead of slipping in after the sweep. Pruned after `BAR_KEPT`.
    ended: HashMap<i64, (Instant, String)>,
}

impl Registry {
    /// Binds `session` to `account`, unless the account's sessions were
    /// ended after `checked_from` (when its credential check began).
    /// Returns the account's newest other session, the one a single-session
    /// login replaces.
    pub(crate) fn bind(
        &mut self,
        now: Instant,
        account: i64,
        session: u64,
        checked_from: Instant,
    ) -> Result<Option<u64>, Barred> {
        if now.saturating_duration_since(checked_from) > BAR_KEPT {
            return Err(Barred::TooSlow);
        }
        if let Some((at, reason)) = self.ended.get(&account) {
            if *at >= checked_from {
                return Err(Barred::Ended(reason.clone()));
            }
        }
        let sessions = self.by_account.entry(account).or_default();
        let newest = sessions.last().copied();
        sessions.push(session);
        self.by_session.insert(session, account);
        Ok(newest)
    }

    /// `session` closed (or never finished logging in).
    pub(crate) fn end(&mut self, session: u64) {
        let Some(account) = self.by_session.remove(&session) else {
            return;
        };
        if let Some(sessions) = self.by_account.get_mut(&account) {
            sessions.retain(|s| *s != session);
            if sessions.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }

    /// Ends `account` at `now`: returns its live sessions, for the caller
    /// to close, and bars logins that checked credentials before now. The
    /// sessions stay listed until they report their close.
    pub(crate) fn end_account(&mut self, now: Instant, account: i64, reason: &str) -> Vec<u64> {
        self.ended
            .retain(|_, (at, _)| now.saturating_duration_since(*at) <= BAR_KEPT);
        self.ended.insert(account, (now, reason.to_owned()));
        self.by_account.get(&account).cloned().unwrap_or_default()
    }
}

/// The registry shared by the gate's shards and the web API, and the one
/// way to end an account's sessions.
#[derive(Clone)]
pub struct AccountSessions {
    /// Where the sessions live; set once the gate has started.
    gate: Arc<OnceLock<GateHandle>>,
    registry: Arc<Mutex<Registry>>,
}

impl AccountSessions {
    pub fn new(gate: Arc<OnceLock<GateHandle>>) -> Self {
        Self {
            gate,
            registry: Arc::default(),
        }
    }

    /// See [`Registry::bind`].
    pub(crate) fn bind(
        &self,
        now: Instant,
        account: i64,
        session: u64,
        checked_from: Instant,
    ) -> Result<Option<u64>, Barred> {
        self.lock().bind(now, account, session, checked_from)
    }

    /// See [`Registry::end`].
    pub(crate) fn end(&self, session: u64) {
        self.lock().end(session);
    }

    /// Closes every session of `account` (clients are told `reason`, as a
    /// kick) and refuses its logins already past their credential check.
    /// Waits only for the shards' queues, never for the world. Returns how
    /// many sessions were closed.
    pub async fn end_all(&self, account: i64, reason: &str) -> usize {
        self.end_with(account, close_code::KICKED, reason).await
    }

    /// [`Self::end_all`] because the account logged in on another node of
    /// the cluster: the clients are told they were replaced.
    pub async fn replace_all(&self, account: i64) -> usize {
        // Nothing recorded for an account with no session here: a flood of
        // requests for other accounts costs a lookup each.
        if !self.lock().by_account.contains_key(&account) {
            return 0;
        }
        self.end_with(account, close_code::REPLACED, crate::game::REPLACED_REASON)
            .await
    }

    async fn end_with(&self, account: i64, code: u16, reason: &str) -> usize {
        let sessions = self.lock().end_account(Instant::now(), account, reason);
        let Some(gate) = self.gate.get() else {
            return 0;
        };
        for &session in &sessions {
            let reason = reason.to_owned();
            let _ = gate
                .run_on(session, move |ctx| ctx.close(session, code, &reason))
                .await;
        }
        sessions.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_of_an_account_is_listed_until_it_closes() {
        let now = Instant::now();
        let mut live = Registry::default();
        assert_eq!(live.bind(now, 7, 100, now), Ok(None));
        assert_eq!(live.bind(now, 7, 200, now), Ok(Some(100)), "the newest");
        assert_eq!(live.bind(now, 8, 300, now), Ok(None));
        live.end(100);
        assert_eq!(
            live.bind(now, 7, 400, now),
            Ok(Some(200)),
            "200 is still the account's"
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(live.end_account(later, 7, "locked"), vec![200, 400]);
        for session in [200, 300, 400] {
            live.end(session);
        }
        assert!(live.by_account.is_empty() && live.by_session.is_empty());
    }

    #[test]
    fn a_login_checked_before_an_end_is_refused_and_one_after_is_not() {
        let start = Instant::now();
        let mut live = Registry::default();
        let ended = start + Duration::from_secs(5);
        assert!(live.end_account(ended, 7, "locked").is_empty());
        // Its credentials were checked against an account not yet locked.
        assert_eq!(
            live.bind(ended + Duration::from_millis(10), 7, 100, start),
            Err(Barred::Ended("locked".into()))
        );
        // Checked after the lock: the account's own check decides.
        let after = ended + Duration::from_millis(1);
        assert_eq!(live.bind(after, 7, 101, after), Ok(None));
        // Another account is not concerned.
        assert_eq!(live.bind(after, 8, 102, start), Ok(None));
    }

    #[test]
    fn ends_are_forgotten_only_when_no_login_can_predate_them() {
        let start = Instant::now();
        let mut live = Registry::default();
        live.end_account(start, 7, "locked");
        let much_later = start + BAR_KEPT + Duration::from_secs(1);
        live.end_account(much_later, 8, "kicked");
        assert!(!live.ended.contains_key(&7), "pruned");
        // A decision that began before the forgotten end is refused anyway.
        assert_eq!(live.bind(much_later, 7, 100, start), Err(Barred::TooSlow));
    }
}
