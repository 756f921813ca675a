//! Arbitrary bytes into the gate shards' routers (`ShardSet::datagram_shard`
//! and `stream_shard`), for every shard count: no panic, and every answer
//! names a shard of the set.
#![no_main]

use hearth_proto::{ServerConfig, ShardSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, packet)) = data.split_first() else {
        return;
    };
    let count = usize::from(count).max(1);
    let set = ShardSet::new(count, &ServerConfig::default(), [7; 32]);
    if let Some(shard) = set.datagram_shard(packet) {
        assert!(shard < count);
    }
    let fallback = packet.len() as u64;
    assert!(set.stream_shard(packet, fallback) < count);
});
