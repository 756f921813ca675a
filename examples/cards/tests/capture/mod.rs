//! Reading a player's capture of the wire (the reliable messages its client
//! received, decoded independently of its replica) for hands: the one check
//! that another player's hand never reaches a client, shared by the
//! in-process and the served tests.

use std::collections::BTreeMap;

use hearth_replica::actor::ActorId;
use hearth_replica::game_wire::{decode_reliable, GameItem, RELIABLE_CHANNEL};

/// What a capture showed of the seats.
#[derive(Debug, Default)]
pub struct SeatsSeen {
    /// Spawns or sets that carried the player's own hand.
    pub own_hands: u32,
    /// Spawns of other players' seats.
    pub other_seats: u32,
}

/// Decodes `received` and panics, naming `who`, at the first spawn or set of
/// another player's seat that carries its hand.
pub fn seats_in_capture(who: &str, received: &[(u16, Vec<u8>)]) -> SeatsSeen {
    let schema = cards::schema();
    let (seat_kind, seat) = schema.kind("seat").unwrap();
    let hand_bit = 1u64 << seat.prop_index("hand").unwrap();
    let mut kinds: BTreeMap<ActorId, u16> = BTreeMap::new();
    let mut owned: BTreeMap<ActorId, bool> = BTreeMap::new();
    let mut seen = SeatsSeen::default();
    for (channel, bytes) in received {
        if *channel != RELIABLE_CHANNEL {
            continue;
        }
        let (_, items) = decode_reliable(bytes, &schema, &|id| kinds.get(&id).copied()).unwrap();
        for item in items {
            match item {
                GameItem::Spawn {
                    id,
                    kind,
                    owned: mine,
                    mask,
                    ..
                } => {
                    kinds.insert(id, kind);
                    owned.insert(id, mine);
                    if kind == seat_kind && mine {
                        seen.own_hands += u32::from(mask & hand_bit != 0);
                    } else if kind == seat_kind {
                        seen.other_seats += 1;
                        assert_eq!(mask & hand_bit, 0, "{who} was sent a hand in a spawn");
                    }
                }
                GameItem::Despawn { id } => {
                    kinds.remove(&id);
                    owned.remove(&id);
                }
                GameItem::Set { id, mask, .. } if kinds[&id] == seat_kind => {
                    if owned[&id] {
                        seen.own_hands += u32::from(mask & hand_bit != 0);
                    } else {
                        assert_eq!(mask & hand_bit, 0, "{who} was sent another's hand");
                    }
                }
                _ => {}
            }
        }
    }
    seen
}
