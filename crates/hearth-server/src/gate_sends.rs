//! Messages from a simulation (the built-in world's lines, a game host) to
//! players' sessions: one gate command per shard carries the messages of
//! that shard's players, each player's in order. The sender waits only for
//! room in the shards' queues, never for a shard to run it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hearth_net::gate::GateHandle;

/// A message for one session: (session, channel, bytes).
pub type Send = (u64, u16, Vec<u8>);

/// Hands `sends` to the gate; sends to sessions that are gone are counted
/// in `failures`.
pub async fn deliver(gate: &GateHandle, sends: Vec<Send>, failures: &Arc<AtomicU64>) {
    if sends.is_empty() {
        return;
    }
    let shards = gate.shard_count();
    let mut by_shard: Vec<Vec<Send>> = vec![Vec::new(); shards];
    if shards == 1 {
        by_shard[0] = sends;
    } else {
        for send in sends {
            by_shard[gate.shard_of(send.0)].push(send);
        }
    }
    for (shard, sends) in by_shard.into_iter().enumerate() {
        if sends.is_empty() {
            continue;
        }
        let failures = failures.clone();
        let _ = gate
            .run_on_shard(shard, move |ctx| {
                for (player, channel, bytes) in sends {
                    if ctx.send(player, channel, &bytes).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
    }
}
