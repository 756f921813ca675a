//! The game side of the gate: the pre-login hook checks credentials against
//! the accounts, enforces one session per account when configured, and
//! (until the world arrives) echoes messages back on their channel.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use hearth_net::gate::{GateCtx, GateHandle, Handler};
use hearth_proto::{close_code, Credentials, Event, LoginRequest};

use crate::accounts::{Account, AccountError, Accounts};
use crate::rate_limit::Action;

/// Login outcomes by reason, for /metrics.
#[derive(Default)]
pub struct LoginCounters {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl LoginCounters {
    pub fn add(&self, outcome: &'static str) {
        *self
            .counts
            .lock()
            .expect("not poisoned")
            .entry(outcome)
            .or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().expect("not poisoned").clone()
    }
}

/// Live sessions by account and accounts by session: both ways are lookups,
/// so a close costs the same with ten players or a hundred thousand.
#[derive(Default)]
struct LiveAccounts {
    /// The newest session of each account.
    by_account: HashMap<i64, u64>,
    by_session: HashMap<u64, i64>,
}

impl LiveAccounts {
    /// `session` is now `account`'s newest; returns the one it had before.
    fn bind(&mut self, account: i64, session: u64) -> Option<u64> {
        self.by_session.insert(session, account);
        self.by_account.insert(account, session)
    }

    fn end(&mut self, session: u64) {
        if let Some(account) = self.by_session.remove(&session) {
            if self.by_account.get(&account) == Some(&session) {
                self.by_account.remove(&account);
            }
        }
    }
}

pub struct GameHandler {
    accounts: Accounts,
    gate: Arc<OnceLock<GateHandle>>,
    map: String,
    allow_anonymous: bool,
    single_session: bool,
    /// Which account each live session belongs to, shared with login decisions.
    sessions: Arc<Mutex<LiveAccounts>>,
    logins: Arc<LoginCounters>,
}

impl GameHandler {
    pub fn new(
        accounts: Accounts,
        gate: Arc<OnceLock<GateHandle>>,
        config: &crate::config::Config,
        logins: Arc<LoginCounters>,
    ) -> Self {
        Self {
            accounts,
            gate,
            map: config.game.map.clone(),
            allow_anonymous: config.accounts.allow_anonymous,
            single_session: config.accounts.single_session,
            sessions: Arc::default(),
            logins,
        }
    }

    fn check_login(&self, session: u64, request: LoginRequest) {
        let Some(gate) = self.gate.get().cloned() else {
            return;
        };
        let accounts = self.accounts.clone();
        let allow_anonymous = self.allow_anonymous;
        let single_session = self.single_session;
        let sessions = self.sessions.clone();
        let logins = self.logins.clone();
        let map = self.map.clone();
        // Password hashing and the database are slow; the gate task goes on
        // serving everyone else while this runs.
        tokio::spawn(async move {
            let verdict: Result<Option<Account>, AccountError> = match request.credentials {
                Credentials::Password { account, password } => {
                    password_login(&accounts, request.address, &account, &password)
                        .await
                        .map(Some)
                }
                Credentials::Token(token) => accounts.verify_access(&token).await.map(Some),
                Credentials::Anonymous => Ok(None),
            };
            let _ = gate
                .run(move |ctx: &mut GateCtx<'_>| match verdict {
                    Ok(None) if !allow_anonymous => {
                        logins.add("anonymous_refused");
                        ctx.refuse_login(session, "this server requires an account: log in with a name and password or a token");
                    }
                    Ok(account) => {
                        if let Some(account) = account {
                            let mut live = sessions.lock().expect("not poisoned");
                            let previous = live.bind(account.id, session);
                            if let Some(old) = previous.filter(|old| *old != session) {
                                if single_session {
                                    ctx.close(old, close_code::REPLACED, "logged in from another place");
                                    logins.add("replaced");
                                }
                            }
                        }
                        if ctx.accept_login(session, Some(&map)) {
                            logins.add("accepted");
                        }
                    }
                    Err(error) => {
                        logins.add(error.code());
                        ctx.refuse_login(session, &error.to_string());
                    }
                })
                .await;
        });
    }
}

/// Charges the login to its address when the link reports one (links that
/// do not are limited by the gate's per-address connection limits alone),
/// then checks the password.
async fn password_login(
    accounts: &Accounts,
    address: Option<SocketAddr>,
    name: &str,
    password: &str,
) -> Result<Account, AccountError> {
    if let Some(address) = address {
        accounts.throttle(Action::Login, address.ip())?;
    }
    accounts.authenticate(name, password).await
}

impl Handler for GameHandler {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(request) => self.check_login(session, request),
            Event::Message { channel, payload } => {
                let _ = gate.send(session, channel, &payload);
            }
            Event::Closed(_) => {
                self.sessions.lock().expect("not poisoned").end(session);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LiveAccounts;

    #[test]
    fn a_replaced_session_ending_does_not_forget_its_successor() {
        let mut live = LiveAccounts::default();
        assert_eq!(live.bind(7, 100), None);
        assert_eq!(
            live.bind(7, 200),
            Some(100),
            "the new login replaces the old"
        );
        live.end(100);
        assert_eq!(
            live.bind(7, 300),
            Some(200),
            "200 is still the account's session"
        );
        live.end(300);
        live.end(200);
        assert!(live.by_account.is_empty() && live.by_session.is_empty());
    }
}
