//! A node's name and what it tells the others about itself.

use serde::{Deserialize, Serialize};

/// Longest node name an operator may give.
pub const MAX_NODE_NAME: usize = 32;
/// Largest node record a node accepts from another (a few hundred bytes,
/// at most about 5 KiB with every line and zone listed; anything larger is
/// not from a Hearth node and is dropped).
pub const MAX_NODE_RECORD: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeNameError {
    #[error("the node name {0:?} must be 1 to {MAX_NODE_NAME} characters of a-z, 0-9 and '-' (set it with --node or [cluster] node)")]
    Invalid(String),
}

/// One run of one node: the operator's name for it and a random
/// incarnation, so that a node restarted under the same name is a new
/// holder (its old leases lapse; they are never silently continued).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// `name` with a fresh incarnation.
    pub fn new(name: &str) -> Result<Self, NodeNameError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NODE_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(NodeNameError::Invalid(name.chars().take(64).collect()));
        }
        let mut incarnation = [0u8; 6];
        getrandom::getrandom(&mut incarnation).expect("the OS has randomness");
        Ok(Self(format!(
            "{name}_{}",
            hearth_codec::to_hex(&incarnation)
        )))
    }

    /// Parses a node id another node sent (`name_hex`).
    pub fn parse(id: &str) -> Option<Self> {
        let (name, hex) = id.split_once('_')?;
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NODE_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid_hex = hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        (valid_name && valid_hex).then(|| Self(id.to_owned()))
    }

    /// The operator's name for the node.
    pub fn name(&self) -> &str {
        self.0.split_once('_').map_or(&self.0, |(name, _)| name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node publishes about itself, about once a second: where it
/// listens and how loaded it is (placement picks the least loaded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Its game port and web port, as other nodes and clients reach them.
    pub game_addr: String,
    pub web_addr: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Its load: sessions on its gates, lines it runs, and its slowest
    /// recent tick.
    pub sessions: u64,
    pub lines: u64,
    pub tick_p99_us: u64,
    /// Its busiest lines (at most [`MAX_LINES_LISTED`]), for `/admin`.
    #[serde(default)]
    pub line_list: Vec<LineLoad>,
    /// Players in its lines, its visitors from other nodes included: the
    /// load placement compares (a new line opens on the node with fewest).
    #[serde(default)]
    pub players: u64,
    /// Per zone it runs lines of, the places left in them (at most
    /// [`MAX_ZONES_LISTED`] zones): where placement sends a player whose
    /// own node's lines of the zone are full.
    #[serde(default)]
    pub room: Vec<ZoneRoom>,
    /// It is draining (`hearth admin drain`): it hands its players to the
    /// others and takes none; placement sends nobody there.
    #[serde(default)]
    pub draining: bool,
    /// It takes players placed by other nodes (`[cluster] placement =
    /// "least-loaded"`). False in the records of nodes from before
    /// placement, which would refuse them.
    #[serde(default)]
    pub placement: bool,
}

/// Zones a node lists in its record's `room` at most (its record stays
/// under 4 KiB, what nodes of the version before read).
pub const MAX_ZONES_LISTED: usize = 16;

/// The places left in a node's open lines of one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRoom {
    pub zone: String,
    pub room: u64,
}

/// Lines a node lists in its record at most (its busiest).
pub const MAX_LINES_LISTED: usize = 32;

/// One line a node runs, as its record shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineLoad {
    pub zone: String,
    pub number: u32,
    pub players: u64,
}

/// Text another node sent that an operator will read: short, with no
/// control, invisible or direction-changing characters.
fn shown_safely(text: &str) -> bool {
    text.len() <= 64
        && !text.is_empty()
        && !text.chars().any(|c| {
            c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        })
}

impl NodeInfo {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a node record serializes")
    }

    /// A record another node published: untrusted input. `None` when it is
    /// too large, not the record's JSON, or names its node badly.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_NODE_RECORD {
            return None;
        }
        let info: NodeInfo = serde_json::from_slice(bytes).ok()?;
        // Addresses are socket addresses, nothing else (no text to show).
        let address = |s: &str| s.len() <= 64 && s.parse::<std::net::SocketAddr>().is_ok();
        let id_ok = NodeId::parse(info.id.as_str()).is_some();
        let lines_ok = info.line_list.len() <= MAX_LINES_LISTED
            && info.line_list.iter().all(|line| shown_safely(&line.zone))
            && info.room.len() <= MAX_ZONES_LISTED
            && info.room.iter().all(|zone| shown_safely(&zone.zone));
        (id_ok && lines_ok && address(&info.game_addr) && address(&info.web_addr)).then_some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_the_name_and_a_fresh_incarnation() {
        let a = NodeId::new("eu-1").unwrap();
        let b = NodeId::new("eu-1").unwrap();
        assert_ne!(a, b, "a restart is a new holder");
        assert_eq!(a.name(), "eu-1");
        assert_eq!(NodeId::parse(a.as_str()), Some(a));
        for bad in ["", "EU", "eu 1", "eu_1", "é", &"x".repeat(33)] {
            assert!(NodeId::new(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "eu-1",
            "eu-1_",
            "eu-1_zzzzzzzzzzzz",
            "_0123456789ab",
            "Eu_0123456789ab",
        ] {
            assert_eq!(NodeId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_record_from_another_node_is_checked_before_it_is_believed() {
        let info = NodeInfo {
            id: NodeId::new("a").unwrap(),
            game_addr: "10.0.0.1:7777".into(),
            web_addr: "10.0.0.1:8080".into(),
            started_ms: 1,
            sessions: 2,
            lines: 3,
            tick_p99_us: 4,
            line_list: vec![LineLoad {
                zone: "town".into(),
                number: 1,
                players: 2,
            }],
            players: 2,
            room: vec![ZoneRoom {
                zone: "town".into(),
                room: 48,
            }],
            draining: false,
            placement: true,
        };
        assert_eq!(NodeInfo::from_bytes(&info.to_bytes()), Some(info.clone()));
        // Zone names an operator will read: none with control or
        // direction-changing characters; not too many lines.
        for bad in ["to\u{202e}wn", "a\u{1b}[2J", ""] {
            let mut odd = info.clone();
            odd.line_list[0].zone = bad.into();
            assert_eq!(NodeInfo::from_bytes(&odd.to_bytes()), None, "{bad:?}");
        }
        let mut many = info.clone();
        many.line_list = vec![info.line_list[0].clone(); MAX_LINES_LISTED + 1];
        assert_eq!(NodeInfo::from_bytes(&many.to_bytes()), None);
        let mut many = info.clone();
        many.room = vec![info.room[0].clone(); MAX_ZONES_LISTED + 1];
        assert_eq!(NodeInfo::from_bytes(&many.to_bytes()), None);
        let mut odd = info.clone();
        odd.room[0].zone = "to\u{202e}wn".into();
        assert_eq!(NodeInfo::from_bytes(&odd.to_bytes()), None);
        // A record of a node from before placement still reads, and says
        // it takes no placed players.
        let mut older = serde_json::to_value(&info).unwrap();
        for field in ["players", "room", "draining", "placement"] {
            older.as_object_mut().unwrap().remove(field);
        }
        let older = NodeInfo::from_bytes(older.to_string().as_bytes()).unwrap();
        assert!(!older.placement);
        let mut forged = serde_json::to_value(&info).unwrap();
        forged["id"] = "../../etc".into();
        assert_eq!(NodeInfo::from_bytes(forged.to_string().as_bytes()), None);
        let mut extra = serde_json::to_value(&info).unwrap();
        extra["admin"] = true.into();
        assert_eq!(NodeInfo::from_bytes(extra.to_string().as_bytes()), None);
        for bad in ["a\u{1b}[31m", "10.0.0.1:80\u{202e}", "evil.example:80", ""] {
            let mut odd = info.clone();
            odd.web_addr = bad.into();
            assert_eq!(NodeInfo::from_bytes(&odd.to_bytes()), None, "{bad:?}");
        }
        assert_eq!(NodeInfo::from_bytes(&vec![b' '; MAX_NODE_RECORD + 1]), None);
        assert_eq!(NodeInfo::from_bytes(b"\xff\x00"), None);
    }
}
