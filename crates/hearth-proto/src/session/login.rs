//! The control-channel login flow (UE's NMT handshake):
//! Hello(version) -> Challenge(nonce) -> Login(credentials, name, options)
//! -> pre-login hook -> Welcome -> NetSpeed -> Join -> Joined.
//! Failure may end any step; each step has a deadline; a message out of order
//! closes the session with a reason naming what was expected.

use std::time::{Duration, Instant};

use crate::config::SessionConfig;
use crate::control::{ControlMessage, Credentials, UdpTicket, NONCE_LEN};
use crate::event::{close_code, CloseReason, Event, LinkKind, LoginRequest};
use crate::handshake::PROTOCOL_VERSION;
use crate::link::Role;

use super::{Outbox, Session};

/// What a client logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginParams {
    pub credentials: Credentials,
    pub player_name: String,
    pub options: String,
    pub net_speed: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStep {
    AwaitHello,
    AwaitLogin { nonce: [u8; NONCE_LEN] },
    AwaitDecision,
    AwaitNetSpeed,
    AwaitJoin,
    Joined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStep {
    Idle,
    AwaitChallenge,
    AwaitWelcome,
    AwaitJoined,
    Joined,
}

pub(crate) struct Login {
    server: Option<ServerStep>,
    client: Option<ClientStep>,
    params: Option<LoginParams>,
    deadline: Option<Instant>,
    step_timeout: Duration,
}

impl Login {
    pub fn new(role: Role, now: Instant, config: &SessionConfig) -> Self {
        let step_timeout = config.login_step_timeout;
        match role {
            Role::Server => Self {
                server: Some(ServerStep::AwaitHello),
                client: None,
                params: None,
                deadline: Some(now + step_timeout),
                step_timeout,
            },
            Role::Client => Self {
                server: None,
                client: Some(ClientStep::Idle),
                params: None,
                deadline: None,
                step_timeout,
            },
        }
    }

    pub fn is_welcomed(&self) -> bool {
        matches!(
            self.server,
            Some(ServerStep::AwaitNetSpeed | ServerStep::AwaitJoin | ServerStep::Joined)
        ) || matches!(
            self.client,
            Some(ClientStep::AwaitJoined | ClientStep::Joined)
        )
    }

    pub fn is_joined(&self) -> bool {
        self.server == Some(ServerStep::Joined) || self.client == Some(ClientStep::Joined)
    }

    /// Only a session that reached Welcome has a resume token to come back with.
    pub fn can_resume(&self) -> bool {
        self.is_welcomed()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// What was awaited, when the current step's deadline has passed.
    pub fn expired(&self, now: Instant) -> Option<&'static str> {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            Some(self.awaiting())
        } else {
            None
        }
    }

    fn awaiting(&self) -> &'static str {
        match (self.server, self.client) {
            (Some(ServerStep::AwaitHello), _) => "Hello",
            (Some(ServerStep::AwaitLogin { .. }), _) => "Login",
            (Some(ServerStep::AwaitDecision), _) => "pre-login decision from the application",
            (Some(ServerStep::AwaitNetSpeed), _) => "NetSpeed",
            (Some(ServerStep::AwaitJoin), _) => "Join",
            (_, Some(ClientStep::AwaitChallenge)) => "Challenge",
            (_, Some(ClientStep::AwaitWelcome)) => "Welcome",
            (_, Some(ClientStep::AwaitJoined)) => "Joined",
            _ => "nothing",
        }
    }

    fn enter_server(&mut self, step: ServerStep, now: Instant) {
        self.server = Some(step);
        self.deadline = (step != ServerStep::Joined).then(|| now + self.step_timeout);
    }

    fn enter_client(&mut self, step: ClientStep, now: Instant) {
        self.client = Some(step);
        self.deadline = (step != ClientStep::Joined).then(|| now + self.step_timeout);
    }
}

/// The server's answer to a login request.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub map: String,
    pub ticket_port: Option<u16>,
    pub server_key: [u8; 32],
}

impl Session {
    pub(crate) fn set_login_params(&mut self, params: LoginParams) {
        self.login.params = Some(params);
    }

    /// Server: the pre-login hook accepted the player. Returns false when no
    /// login decision is pending.
    pub(crate) fn accept_login(
        &mut self,
        now: Instant,
        welcome: Welcome,
        out: &mut Outbox,
    ) -> bool {
        if self.login.server != Some(ServerStep::AwaitDecision) {
            return false;
        }
        // A session that logged in over a stream gets a ticket for UDP.
        let ticket = match (welcome.ticket_port, self.has_link(LinkKind::Datagram)) {
            (Some(port), false) => Some(UdpTicket {
                session_id: self.id,
                secret: self.attach_secret,
                port,
            }),
            _ => None,
        };
        self.send_control(&ControlMessage::Welcome {
            map: welcome.map,
            session_id: self.id,
            resume_token: self.attach_secret,
            ticket,
            server_key: welcome.server_key,
        });
        self.login.enter_server(ServerStep::AwaitNetSpeed, now);
        self.flush(now, out);
        true
    }

    /// Server: the pre-login hook refused the player.
    pub(crate) fn refuse_login(&mut self, now: Instant, reason: &str, out: &mut Outbox) -> bool {
        if self.login.server != Some(ServerStep::AwaitDecision) {
            return false;
        }
        self.fail(now, CloseReason::LoginRefused(reason.to_owned()), out);
        true
    }
}

/// Client: sends Hello on the first link.
pub(super) fn on_link_up(session: &mut Session, now: Instant, _out: &mut Outbox) {
    if session.login.client == Some(ClientStep::Idle) && session.login.params.is_some() {
        session.send_control(&ControlMessage::Hello {
            version: PROTOCOL_VERSION,
        });
        session.login.enter_client(ClientStep::AwaitChallenge, now);
    }
}

pub(super) fn handle(
    session: &mut Session,
    now: Instant,
    message: ControlMessage,
    out: &mut Outbox,
) {
    if let ControlMessage::Failure { code, reason } = &message {
        let reason = match *code {
            close_code::VERSION_MISMATCH => CloseReason::VersionMismatch(reason.clone()),
            _ => CloseReason::from_peer(*code, reason),
        };
        session.finish_close(reason, out);
        return;
    }
    match session.role {
        Role::Server => handle_on_server(session, now, message, out),
        Role::Client => handle_on_client(session, now, message, out),
    }
}

fn out_of_order(session: &mut Session, now: Instant, message: &ControlMessage, out: &mut Outbox) {
    let why = format!(
        "expected {} during login, got {}",
        session.login.awaiting(),
        message.name()
    );
    session.fail(now, CloseReason::ProtocolError(why), out);
}

fn handle_on_server(
    session: &mut Session,
    now: Instant,
    message: ControlMessage,
    out: &mut Outbox,
) {
    let step = session.login.server.expect("server session");
    match (step, message) {
        (ServerStep::AwaitHello, ControlMessage::Hello { version }) => {
            if version != PROTOCOL_VERSION {
                let why = format!(
                    "upgrade required: the server speaks protocol version {PROTOCOL_VERSION}, the client {version}"
                );
                session.fail(now, CloseReason::VersionMismatch(why), out);
                return;
            }
            let nonce = session.random_bytes::<NONCE_LEN>();
            session.send_control(&ControlMessage::Challenge { nonce });
            session
                .login
                .enter_server(ServerStep::AwaitLogin { nonce }, now);
        }
        (
            ServerStep::AwaitLogin { nonce },
            ControlMessage::Login {
                nonce: echoed,
                credentials,
                player_name,
                options,
            },
        ) => {
            if !crate::crypto::secure_eq(&nonce, &echoed) {
                let why = "login does not answer this connection's challenge".to_owned();
                session.fail(now, CloseReason::ProtocolError(why), out);
                return;
            }
            session.login.enter_server(ServerStep::AwaitDecision, now);
            let address = session
                .datagram
                .as_ref()
                .map(|link| link.peer)
                .or(session.origin);
            let request = LoginRequest {
                credentials,
                player_name,
                options,
                address,
            };
            out.events
                .push_back((session.id, Event::LoginRequest(request)));
        }
        (ServerStep::AwaitNetSpeed, ControlMessage::NetSpeed { bytes_per_second }) => {
            session.net_speed = Some(bytes_per_second);
            session.login.enter_server(ServerStep::AwaitJoin, now);
        }
        (ServerStep::Joined, ControlMessage::NetSpeed { bytes_per_second }) => {
            // UE lets a client change its rate at any time once in.
            session.net_speed = Some(bytes_per_second);
        }
        (ServerStep::AwaitJoin, ControlMessage::Join) => {
            session.send_control(&ControlMessage::Joined);
            session.login.enter_server(ServerStep::Joined, now);
            out.events.push_back((session.id, Event::Joined));
        }
        (_, message) => out_of_order(session, now, &message, out),
    }
}

fn handle_on_client(
    session: &mut Session,
    now: Instant,
    message: ControlMessage,
    out: &mut Outbox,
) {
    let step = session.login.client.expect("client session");
    match (step, message) {
        (ClientStep::AwaitChallenge, ControlMessage::Challenge { nonce }) => {
            let params = session
                .login
                .params
                .clone()
                .expect("login started with params");
            session.send_control(&ControlMessage::Login {
                nonce,
                credentials: params.credentials,
                player_name: params.player_name,
                options: params.options,
            });
            session.login.enter_client(ClientStep::AwaitWelcome, now);
        }
        (
            ClientStep::AwaitWelcome,
            ControlMessage::Welcome {
                map,
                session_id,
                resume_token,
                ticket,
                server_key,
            },
        ) => {
            if session
                .proven_server_key
                .is_some_and(|proven| proven != server_key)
            {
                session.fail(now, CloseReason::ServerKeyMismatch, out);
                return;
            }
            if session.datagram.is_some() && session_id != session.id {
                let why = "Welcome names another session than the handshake".to_owned();
                session.fail(now, CloseReason::ProtocolError(why), out);
                return;
            }
            session.id = session_id;
            session.attach_secret = resume_token;
            session.proven_server_key.get_or_insert(server_key);
            out.events.push_back((
                session.id,
                Event::Welcomed {
                    session_id,
                    map,
                    ticket,
                },
            ));
            let net_speed = session.login.params.as_ref().map_or(0, |p| p.net_speed);
            session.send_control(&ControlMessage::NetSpeed {
                bytes_per_second: net_speed,
            });
            session.send_control(&ControlMessage::Join);
            session.login.enter_client(ClientStep::AwaitJoined, now);
        }
        (ClientStep::AwaitJoined, ControlMessage::Joined) => {
            session.login.enter_client(ClientStep::Joined, now);
            out.events.push_back((session.id, Event::Joined));
        }
        (_, message) => out_of_order(session, now, &message, out),
    }
}
