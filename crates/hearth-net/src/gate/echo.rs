//! A handler that accepts every login and sends each message back on the
//! channel it came on: the server side of the echo examples and tests.

use hearth_proto::Event;

use super::{GateCtx, Handler};

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
