//! A stream connection's outgoing queue, bounded in packets and in bytes.
//!
//! The gate task pushes without waiting (it serves every session and must
//! never block on one); the connection's writer takes packets out and reports
//! them written only once they are on the socket, so bytes sitting in the
//! writer's coalescing buffer still count against the bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::pump::PacketQueue;

pub(crate) use crate::pump::Outgoing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The packet or byte bound is reached: the peer reads too slowly.
    Full,
    /// The connection's writer has ended.
    Closed,
}

pub(crate) fn outbox(max_packets: usize, max_bytes: usize) -> (OutboxSender, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_packets.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutboxSender {
            tx,
            queued: queued.clone(),
            max_bytes,
        },
        OutboxReceiver {
            rx,
            queued,
            taken: 0,
        },
    )
}

pub(crate) struct OutboxSender {
    tx: mpsc::Sender<Outgoing>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl OutboxSender {
    pub fn push(&self, packet: Vec<u8>) -> Result<(), PushError> {
        let len = packet.len();
        // Only this sender adds, so checking before adding cannot overshoot;
        // the writer only subtracts.
        if self.queued.load(Ordering::Acquire) + len > self.max_bytes {
            return Err(PushError::Full);
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match self.tx.try_send(Outgoing::Packet(packet)) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                Err(match error {
                    mpsc::error::TrySendError::Full(_) => PushError::Full,
                    mpsc::error::TrySendError::Closed(_) => PushError::Closed,
                })
            }
        }
    }

    /// Asks the writer to send what is queued, then close the connection.
    pub fn close(&self) {
        let _ = self.tx.try_send(Outgoing::Close);
    }
}

pub(crate) struct OutboxReceiver {
    rx: mpsc::Receiver<Outgoing>,
    queued: Arc<AtomicUsize>,
    /// Bytes taken out and not yet reported written.
    taken: usize,
}

impl OutboxReceiver {
    fn count(&mut self, item: &Option<Outgoing>) {
        if let Some(Outgoing::Packet(packet)) = item {
            self.taken += packet.len();
        }
    }
}

impl PacketQueue for OutboxReceiver {
    /// The next item; `None` when the gate dropped the sender. Cancel-safe.
    async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await;
        self.count(&item);
        item
    }

    fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok();
        self.count(&item);
        item
    }

    /// Everything taken so far is on the socket: its bytes leave the bound.
    fn written(&mut self) {
        self.queued.fetch_sub(self.taken, Ordering::AcqRel);
        self.taken = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_count_until_written_and_both_bounds_refuse() {
        let (sender, mut receiver) = outbox(3, 100);
        sender.push(vec![0; 60]).unwrap();
        assert_eq!(sender.push(vec![0; 41]), Err(PushError::Full), "bytes");
        sender.push(vec![0; 40]).unwrap();
        assert!(matches!(receiver.recv().await, Some(Outgoing::Packet(p)) if p.len() == 60));
        assert_eq!(
            sender.push(vec![0; 1]),
            Err(PushError::Full),
            "taken but not yet written still counts"
        );
        receiver.written();
        sender.push(vec![0; 1]).unwrap();
        sender.push(vec![0; 1]).unwrap();
        assert_eq!(sender.push(vec![]), Err(PushError::Full), "packets");
        drop(receiver);
        assert_eq!(sender.push(vec![0; 1]), Err(PushError::Closed));
    }
}
