//! What a node reads from another over NATS: a node record (and the node
//! id inside it), a drain request and its answer, a line handed over and
//! its answer are untrusted input. Decoding anything must not panic; what
//! decodes is within the bounds the decoder promises and survives a round
//! trip unchanged.

#![no_main]

use hearth_cluster::drain::{decode_answer, decode_request, MAX_DRAIN_MESSAGE};
use hearth_cluster::leases::MAX_LINE_NAME;
use hearth_cluster::line_moves::{self, MAX_LINE_MESSAGE};
use hearth_cluster::node::{NodeId, NodeInfo, MAX_NODE_RECORD, MAX_ZONES_LISTED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(info) = NodeInfo::from_bytes(data) {
        assert!(data.len() <= MAX_NODE_RECORD);
        assert!(NodeId::parse(info.id.as_str()).is_some());
        assert!(info.game_addr.parse::<std::net::SocketAddr>().is_ok());
        assert!(info.web_addr.parse::<std::net::SocketAddr>().is_ok());
        assert!(info.room.len() <= MAX_ZONES_LISTED);
        assert_eq!(NodeInfo::from_bytes(&info.to_bytes()), Some(info));
    }
    if let Some((by, _)) = decode_request(data) {
        assert!(data.len() <= MAX_DRAIN_MESSAGE);
        assert!(by.chars().count() <= 64 && !by.chars().any(char::is_control));
    }
    if let Some(answer) = decode_answer(data) {
        assert!(data.len() <= MAX_DRAIN_MESSAGE);
        let reason = answer.refused.unwrap_or_default();
        assert!(reason.chars().count() <= 128 && !reason.chars().any(char::is_control));
    }
    if let Some(handed) = line_moves::decode_request(data) {
        assert!(data.len() <= MAX_LINE_MESSAGE);
        assert!(!handed.line.is_empty() && handed.line.len() <= MAX_LINE_NAME);
        assert!(!handed.line.chars().any(char::is_control) && handed.epoch > 0);
        let again = serde_json::to_vec(&handed).unwrap();
        assert_eq!(line_moves::decode_request(&again), Some(handed));
    }
    if let Some(taken) = line_moves::decode_answer(data) {
        assert!(data.len() <= MAX_LINE_MESSAGE);
        let reason = taken.refused.unwrap_or_default();
        assert!(reason.chars().count() <= 128 && !reason.chars().any(char::is_control));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = NodeId::parse(text) {
            assert_eq!(id.as_str(), text);
            assert!(!id.name().is_empty());
        }
    }
});
