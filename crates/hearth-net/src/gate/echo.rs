//! A handler that accepts every login and sends each message back on the
//! channel it came on: the server side of the echo examples and tests,
//! inline (`gate::start(.., EchoHandler)`) or on its own thread
//! (`gate::start(.., Offload::new(EchoHandler))`).

use hearth_proto::Event;

use super::{GateCtx, Handler, QueuedCtx, QueuedHandler};

#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl Handler for EchoHandler {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => {
                gate.accept_login(session, None);
            }
            Event::Message { channel, payload } => {
                if let Err(e) = gate.send(session, channel, &payload) {
                    tracing::debug!(session, channel, "echo not sent: {e}");
                }
            }
            _ => {}
        }
    }
}

impl QueuedHandler for EchoHandler {
    fn on_event(&mut self, gate: &mut QueuedCtx, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => gate.accept_login(session, None),
            Event::Message { channel, payload } => gate.send(session, channel, payload),
            _ => {}
        }
    }
}
