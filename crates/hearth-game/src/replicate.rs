//! What each player receives each tick, within its byte budget: the actors
//! that became relevant (spawned with everything it may see), the reliable
//! properties that changed, the game's messages, the actors gone or out of
//! view; and on the state channel the frame properties that changed since
//! the newest frame it acknowledged, with the acknowledgement of its moves.
//!
//! Relevance: an actor of a kind that does not move is relevant to every
//! player of the line; a moving one to the players whose controlled actor
//! is within the view radius (it leaves a quarter further out), and to its
//! controller. A player who controls nothing sees the whole line.
//!
//! Priority: reliable items (sets, messages, despawns) always go; frame
//! updates and spawns share what is left of the budget, and only when they
//! do not all fit are they ordered: the player's own actor first, then by
//! staleness over distance (Unreal's net priority). What is left waits, and
//! grows staler. Far actors are refreshed less often, and less often still
//! while the host sheds optional traffic (`GameLine::set_shedding`). An actor whose frame
//! properties did not change since what the client acknowledged is dormant
//! for it and costs one comparison.
//!
//! Per client, Hearth keeps one entry per actor in view (the tick of the
//! newest acknowledged frame that carried it, and a bit per unacknowledged
//! frame that carried it) and the ticks of at most [`MAX_IN_FLIGHT`]
//! unacknowledged frames: memory per client is a fixed size per actor it
//! sees, however far behind it falls. A client that falls further behind
//! loses its oldest frames, and what they carried is sent again against
//! what it acknowledged last: it catches up with the state as it is, not
//! with a history.

use std::cmp::Reverse;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use hearth_replica::game_wire::{
    put_frame_header, put_reliable_header, put_set, put_spawn, put_update, FrameHeader, GameItem,
    FRAME_HEADER_MAX,
};
use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
use hearth_replica::schema::{Schema, Value};

use crate::blocks::{Blocks, NO_UNIT};
use crate::ctx::KindMasks;
use crate::grid::Grid;
use crate::ids::{ActorId, PlayerId};
use crate::movement::{self, Space};
use crate::state::{ActorState, GameStats, Observer, PlayerState, Steering};

/// Unacknowledged frames remembered per client; older ones count as lost
/// (what they carried is sent again). One bit of each view entry's
/// `carried` per frame: at most 32 (1.6 s at 20 ticks a second, ten
/// acknowledgements of a client that acknowledges every third frame).
pub const MAX_IN_FLIGHT: usize = 32;

/// Largest reliable message a tick sends one player (items beyond go in
/// further messages of the same tick): well under the session's message
/// limit, so a latecomer's spawns of a crowded line or a burst of the
/// game's messages is never refused by the session as one oversized
/// message (which would leave the client's replica behind for good).
pub const MAX_RELIABLE_BYTES: usize = 256 * 1024;

/// The smallest per-tick budget, whatever the game asks: a frame header, a
/// few updates and a spawn.
pub const MIN_BUDGET: u32 = 400;

/// Largest reliable message header: tick and item count.
const RELIABLE_HEADER_MAX: usize = 10 + 10;

/// Frame properties of a kind whose change ticks replication copies beside
/// each actor's other hot facts (position, facing and a little more).
pub(crate) const HOT_FRAME_PROPS: usize = 4;

/// Ticks between a player's relevancy passes (grid queries).
const RELEVANCY_PERIOD: u64 = 4;
/// ... and for a player in a crowd (`CROWD_ENTRIES` in view), whose pass
/// looks at hundreds of actors: a newcomer to its view is spawned, and an
/// actor that walked out despawned, up to this many ticks late (Unreal
/// keeps an actor relevant for seconds after it stops being so; this is
/// under a second at 20 Hz). Updates of what it has are not delayed.
const CROWD_RELEVANCY_PERIOD: u64 = 16;

/// Budgeted candidates a tick may skip for not fitting before it stops
/// looking (the rest are larger or lower in priority).
const MAX_MISSES: usize = 16;

/// What one client has of the line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ClientView {
    /// The `Joined` item went out.
    joined_sent: bool,
    /// The actors the client was sent and has in view, in id order (so
    /// that a tick's relevant actors, in the same order, are matched in one
    /// sequential pass).
    entries: Vec<ViewEntry>,
    /// The ticks of the frames sent and not acknowledged, oldest first. The
    /// one at index `k` is frame number `next_frame - len + k`.
    in_flight: VecDeque<u64>,
    /// The number the next frame sent gets: frame `n` is bit `n % 32` of
    /// each entry's `carried`.
    next_frame: u64,
    /// Reliable properties that changed up to this tick have been sent.
    reliable_through: u64,
    /// The player's entry into lines, carried by `Joined` and every frame.
    #[serde(default)]
    entry: u8,
    /// Actors beyond a quarter of the view radius are looked at `1 << this`
    /// times less often: raised while far more want the budget than it
    /// holds (a crowd), lowered once it has room to spare, so a crowd's
    /// client costs the line a share of its actors a tick, not all of them.
    #[serde(default)]
    crowd_shift: u8,
    /// The client is replicated every `1 << this` ticks, with the budget of
    /// as many ticks: raised once even the far actors' slower refresh
    /// (`crowd_shift` at its most) leaves its budget far short of what
    /// wants it. Unreal skips a saturated connection until its bandwidth
    /// recovers for the same reason: what a client costs the line then
    /// follows the bytes it can take, not the ticks; a crowd of thousands
    /// in view would otherwise cost every client a look at every actor
    /// every tick, to send each a small share of them.
    #[serde(default)]
    frame_shift: u8,
    /// The tick it was last replicated: a frame after a pause carries the
    /// budget of the ticks paused.
    #[serde(default)]
    replicated_at: u64,
    /// While the client sees a crowd ([`CROWD_ENTRIES`] actors or more):
    /// the shared units (see `crate::blocks`) near it, in unit order, and
    /// what it has of each. Not saved: a restored line sends them again.
    #[serde(skip)]
    units: Vec<UnitView>,
    /// While in a crowd: which of the tick's actors (by slot) the client
    /// knows, a bit each; a unit goes to it only if it knows every actor in
    /// it. Rebuilt when its actors or the slots change.
    #[serde(skip)]
    known: Vec<u64>,
    #[serde(skip)]
    known_valid: bool,
    /// The frames in flight (a bit per frame number, as `carried`) that
    /// carried some entry: an acknowledgement of frames that carried none,
    /// which in a crowd is most, need not walk the entries. All set after
    /// a restore, which says nothing of them.
    #[serde(skip, default = "every_frame")]
    frames_with_entries: u32,
    /// Where the player's own actor's entry was last found (a hint,
    /// checked): a crowded client's quiet tick looks at that entry alone.
    #[serde(skip)]
    own_entry: u32,
    /// `Scratch::slots_epoch` when `known` was built, and when this client
    /// was last replicated: slots that moved on a tick it was paused in
    /// make it rebuild, and make its next tick not quiet. `u64::MAX`
    /// (nothing yet) never matches.
    #[serde(skip, default = "no_epoch")]
    known_epoch: u64,
    #[serde(skip, default = "no_epoch")]
    seen_epoch: u64,
}

fn no_epoch() -> u64 {
    u64::MAX
}

fn every_frame() -> u32 {
    u32::MAX
}

/// A client that sees this many actors or more is sent the moving ones'
/// updates in shared units (`crate::blocks`) rather than one by one.
pub const CROWD_ENTRIES: usize = 256;

/// What a client has of one shared unit: as a view entry has of an actor.
#[derive(Debug, Clone, Copy)]
struct UnitView {
    unit: u32,
    /// The client has every actor of the unit as of this tick.
    acked: u64,
    /// Which unacknowledged frames carried it (as `ViewEntry::carried`).
    carried: u32,
    last_sent: u32,
    /// Every actor in it is known to the client this tick.
    ready: bool,
}

/// The most [`ClientView::crowd_shift`] rises to: actors beyond a quarter
/// of the view radius looked at every 8th tick at the least.
const MAX_CROWD_SHIFT: u8 = 3;

/// The most [`ClientView::frame_shift`] rises to: a saturated client is
/// sent a frame every 4th tick at the least (5 a second at 20 Hz).
pub const MAX_FRAME_SHIFT: u8 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ViewEntry {
    id: ActorId,
    /// The client has every frame property as of this tick.
    acked: u64,
    /// The client's player owns the actor (and sees its owner-only
    /// properties).
    owned: bool,
    /// The tick a frame (or the spawn) last carried it, its low 32 bits
    /// (see [`ticks_since`]): how stale it is.
    last_sent: u32,
    /// Which of the unacknowledged frames carried it, a bit per frame
    /// number modulo 64 (see `ClientView::next_frame`).
    carried: u32,
    /// Where the actor was in the last tick's actors (a hint, checked).
    #[serde(skip)]
    slot: u32,
    /// Its squared distance when last looked at (0 until then, and for
    /// the player's own actor; at most `u32::MAX`, beyond any view): what
    /// its refresh period is taken from on the ticks it is not looked at.
    #[serde(skip)]
    distance2: u32,
}

/// What an acknowledgement credits: frames applied (`acked`) and frames
/// leaving the window (`leaving`), as bits of `carried`.
struct Credit<'a> {
    acked: u32,
    leaving: u32,
    /// The number of the oldest frame in flight.
    first: u64,
    in_flight: &'a VecDeque<u64>,
}

impl Credit<'_> {
    /// Credits what one entry or unit records: it is known to the client as
    /// of the newest applied frame that carried it.
    fn apply(&self, carried: &mut u32, acked: &mut u64) {
        let hits = *carried & self.acked;
        if hits != 0 {
            let newest = 31 - hits.rotate_right((self.first % 32) as u32).leading_zeros();
            *acked = (*acked).max(self.in_flight[newest as usize]);
        }
        *carried &= !self.leaving;
    }
}

/// Ticks from `last` (the low 32 bits of a tick) to `tick`: staleness is
/// what replication needs of when an actor was last sent, and 32 bits of it
/// keep a view entry at 32 bytes.
fn ticks_since(tick: u64, last: u32) -> u64 {
    u64::from((tick as u32).wrapping_sub(last))
}

/// A squared distance as a view entry keeps it.
fn entry_distance2(distance2: i64) -> u32 {
    distance2.clamp(0, i64::from(u32::MAX)) as u32
}

/// In a tick's relevant actors: an actor in view that is dormant for its
/// refresh period whatever it did, and was not looked at.
const NOT_LOOKED_AT: i64 = i64::MIN;

impl ClientView {
    /// The view of a player's `entry` into lines (`Entrance::entry`).
    pub fn entered(entry: u8) -> Self {
        Self {
            entry,
            ..Self::default()
        }
    }

    /// The client applied the frame of `tick`, and of the ticks before it
    /// those whose bits are set in `earlier` (bit `i`: tick `tick - 1 - i`;
    /// see `hearth_replica::frame_acks`): each actor is known to the client
    /// as of the newest of them that carried it. The other frames up to
    /// `tick` are lost (the client ignores frames older than one it
    /// applied). False when no frame of `tick` is in flight.
    pub fn acknowledge(&mut self, tick: u64, earlier: u32) -> bool {
        let Some(at) = self.in_flight.iter().position(|t| *t == tick) else {
            return false;
        };
        let first = self.next_frame - self.in_flight.len() as u64;
        // The applied frames, bit `k` for the frame at `in_flight[k]`.
        let mut applied = 1u32 << at;
        for (k, &sent) in self.in_flight.iter().enumerate().take(at) {
            let back = tick - sent - 1;
            if back < 32 && earlier & (1 << back) != 0 {
                applied |= 1 << k;
            }
        }
        // The same, as the frames' bits in the entries' `carried`.
        let acked = applied.rotate_left((first % 32) as u32);
        let leaving = frame_bits(first, at as u64 + 1);
        let credit = Credit {
            acked,
            leaving,
            first,
            in_flight: &self.in_flight,
        };
        if self.frames_with_entries & leaving != 0 {
            for entry in &mut self.entries {
                credit.apply(&mut entry.carried, &mut entry.acked);
            }
            self.frames_with_entries &= !leaving;
        }
        for unit in &mut self.units {
            credit.apply(&mut unit.carried, &mut unit.acked);
        }
        self.in_flight.drain(..=at);
        true
    }

    /// Remembers a frame of `tick` as sent, making room for it (the oldest
    /// unacknowledged frame counts as lost when there are
    /// [`MAX_IN_FLIGHT`]); returns the bit its entries are marked with.
    fn sent_frame(&mut self, tick: u64) -> u32 {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
            let lost = !(1u32 << ((self.next_frame - MAX_IN_FLIGHT as u64) % 32));
            if self.frames_with_entries & !lost != 0 {
                for entry in &mut self.entries {
                    entry.carried &= lost;
                }
                self.frames_with_entries &= lost;
            }
            for unit in &mut self.units {
                unit.carried &= lost;
            }
        }
        self.in_flight.push_back(tick);
        let bit = 1u32 << (self.next_frame % 32);
        self.next_frame += 1;
        bit
    }

    /// Whether a view read from a snapshot holds together: its frames in
    /// flight are numbered and within the window of [`MAX_IN_FLIGHT`].
    pub fn is_sound(&self) -> bool {
        self.in_flight.len() <= MAX_IN_FLIGHT && self.next_frame >= self.in_flight.len() as u64
    }

    /// Bytes this view holds on the heap: a fixed size per actor in view and
    /// per unacknowledged frame, however far behind the client is.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<ViewEntry>()
            + self.in_flight.capacity() * std::mem::size_of::<u64>()
    }

    /// The client no longer sees a crowd: it is sent every actor's updates
    /// one by one again (from what each entry says it has).
    fn leave_crowd(&mut self) {
        if !self.units.is_empty() || !self.known.is_empty() {
            self.units = Vec::new();
            self.known = Vec::new();
            self.known_valid = false;
        }
    }

    /// The player's entry into lines this view belongs to.
    pub fn entry(&self) -> u8 {
        self.entry
    }

    /// Actors the client has in view.
    pub fn in_view(&self) -> usize {
        self.entries.len()
    }
}

/// Per tick, for every player's replication: where the moving actors are,
/// and buffers reused from player to player and tick to tick. Holds nothing
/// a line needs to keep: rebuilt each tick.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Moving actors, their positions and slots; the grid holds indexes
    /// into it.
    moving: Vec<(ActorId, Pos, u32)>,
    /// Actors of kinds that do not move and their slots, in id order:
    /// relevant to all.
    fixed: Vec<(ActorId, u32)>,
    grid: Grid,
    /// Per slot of the tick's actors, what replication looks at for every
    /// actor in every view, side by side: an actor that did not change
    /// costs a read of this array, not of its state.
    hot: Vec<Hot>,
    /// Per slot, what an actor that changed needs: when its frame
    /// properties changed, and its frame update as last encoded this tick
    /// (most clients that see an actor need the same properties of it):
    /// encoded once, copied to each.
    fresh: Vec<Fresh>,
    encoded_bytes: Vec<u8>,
    /// This player's relevant actors: id, squared distance (-1: its own
    /// controlled actor; 0 for actors that do not move) and slot, in id
    /// order.
    relevant: Vec<(ActorId, i64, u32)>,
    /// A bit per moving actor, set while a relevancy pass collects the
    /// near ones (cleared as they are read back).
    near: Vec<u64>,
    /// Where `relevant` and the fixed actors are merged.
    merged: Vec<(ActorId, i64, u32)>,
    candidates: Vec<Candidate>,
    /// No actor left the line since the last tick (and none came before
    /// the last one): every view entry's slot still holds.
    slots_kept: bool,
    /// Counts the ticks whose slots were not kept: a client replicated
    /// less often than every tick (a paused one) compares it with its own
    /// to tell whether slots moved since it last looked.
    slots_epoch: u64,
    /// The last tick's actor count and newest id, to tell that.
    last_count: usize,
    last_id: Option<ActorId>,
    /// The newest change of any actor's reliable properties.
    newest_reliable: u64,
    /// One player's reliable items, where they end, and the actors gone
    /// from its view: reused from player to player.
    items: Vec<u8>,
    units: Vec<(usize, usize)>,
    gone: Vec<ActorId>,
    /// The moving actors by shared unit, and the units' encodings.
    blocks: Blocks,
    /// The units near one client, reused from client to client.
    near_units: Vec<u32>,
    /// Merged unit views, reused.
    merged_units: Vec<UnitView>,
    /// The units one crowded client is sent whole this tick, a bit each
    /// (set for it, cleared after it).
    ready_units: Vec<u64>,
    /// On a crowded client's quiet tick, the view entries looked at (its
    /// own actor's, and those of actors in units it is not sent whole), by
    /// index, in id order: reused.
    picked_entries: Vec<u32>,
}

/// One actor as replication sees it first (see [`Scratch::hot`]): one
/// cache line, copied from its state once a tick in id order, so that the
/// many views that look at it each tick read this line and not the
/// actor's state (a walk of pointers, a miss each).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Hot {
    /// Checks a view entry's remembered slot without reading the actors.
    id: ActorId,
    kind: u16,
    moves: bool,
    /// Its position, if it moves.
    pos: Pos,
    frame_changed: u64,
    reliable_changed: u64,
    /// When each of its kind's frame properties last changed (in the order
    /// of `KindMasks::hot_frame`), if the kind has few enough: which of them
    /// a view needs is found here, not in the actor's state.
    frame_ticks: [u64; HOT_FRAME_PROPS],
}

/// An actor's frame update as encoded this tick (see [`Scratch::fresh`]).
#[derive(Debug, Clone, Copy, Default)]
struct Fresh {
    /// The tick this was encoded in (0: never): encoded when a view first
    /// needs the actor in a tick, so the actors nobody needs cost nothing.
    stamp: u64,
    /// Its encoded frame update in `Scratch::encoded_bytes` (id, mask and
    /// values: what a frame carries of it, copied whole), for `mask`.
    mask: u64,
    start: u32,
    len: u32,
}

impl Scratch {
    /// Where everything is this tick.
    pub fn locate(&mut self, tick: u64, actors: Actors<'_>, masks: &[KindMasks], space: &Space) {
        // Ids only grow: with no actor gone, the last tick's actors are
        // this tick's first ones, and the last of them is where it was.
        self.slots_kept = self.last_id.is_some_and(|last| {
            actors.len() >= self.last_count && actors[self.last_count - 1].0 == last
        });
        if !self.slots_kept {
            self.slots_epoch += 1;
        }
        self.last_count = actors.len();
        self.last_id = actors.last().map(|(id, _)| *id);
        self.newest_reliable = 0;
        self.moving.clear();
        self.fixed.clear();
        self.hot.clear();
        if self.fresh.len() < actors.len() {
            self.fresh.resize(actors.len(), Fresh::default());
        }
        self.encoded_bytes.clear();
        for (slot, (id, actor)) in actors.iter().enumerate() {
            let moves = space.moves(actor.kind);
            let pos = if moves {
                movement::position(actor)
            } else {
                Pos::new(0, 0)
            };
            let mut frame_ticks = [0; HOT_FRAME_PROPS];
            if let Some(bits) = &masks[usize::from(actor.kind)].hot_frame {
                for (at, bit) in frame_ticks.iter_mut().zip(bits) {
                    if *bit != 0 {
                        *at = actor.changed[bit.trailing_zeros() as usize];
                    }
                }
            }
            self.newest_reliable = self.newest_reliable.max(actor.reliable_changed);
            self.hot.push(Hot {
                id: *id,
                kind: actor.kind,
                moves,
                pos,
                frame_changed: actor.frame_changed,
                reliable_changed: actor.reliable_changed,
                frame_ticks,
            });
            if moves {
                self.moving.push((*id, pos, slot as u32));
            } else {
                self.fixed.push((*id, slot as u32));
            }
        }
        self.blocks
            .locate(tick, space.cells(), &self.moving, actors.len());
        self.near.clear();
        self.near.resize(self.moving.len().div_ceil(64), 0);
        if self.moving.is_empty() {
            return;
        }
        if self.grid.is_empty_shape() {
            let (width, height) = space.cells();
            // Buckets half the view radius wide: a query's square then
            // overlaps little beyond the circle it stands for.
            let cells = (space.view_in / i64::from(UNITS_PER_CELL) / 2).max(4) as i32;
            self.grid = Grid::new(width, height, cells);
        }
        self.grid.clear();
        for (index, (_, pos, _)) in self.moving.iter().enumerate() {
            self.grid.insert(index as u32, *pos);
        }
    }
}

impl Scratch {
    /// Where a viewer whose controlled actor is `own` comes in the tick's
    /// replication order: the Morton code of its grid bucket (bucket
    /// neighbours stay close in the order), `u64::MAX` for a viewer who
    /// controls nothing that moves.
    pub fn spatial_key(&self, actors: Actors<'_>, own: Option<ActorId>) -> u64 {
        let Some(slot) = own.and_then(|id| find(actors, id, &mut 0)) else {
            return u64::MAX;
        };
        let hot = &self.hot[slot as usize];
        if !hot.moves {
            return u64::MAX;
        }
        let (x, y) = self.grid.bucket_of(hot.pos);
        morton(x as u32, y as u32)
    }
}

/// Interleaves the bits of `x` and `y` (a Z-order curve).
fn morton(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
        v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        (v | (v << 1)) & 0x5555_5555_5555_5555
    }
    spread(x) | (spread(y) << 1)
}

/// The line's actors in id order, for one tick's replication: an actor is
/// found by its slot here (remembered per view entry, or by binary search)
/// rather than in the line's ordered map, which costs a tree walk each time.
pub(crate) type Actors<'a> = &'a [(ActorId, &'a ActorState)];

/// The slot of `id` in `actors`: `hint` if it still holds it, else found
/// (and `hint` updated).
fn find(actors: Actors<'_>, id: ActorId, hint: &mut u32) -> Option<u32> {
    if actors.get(*hint as usize).is_some_and(|(at, _)| *at == id) {
        return Some(*hint);
    }
    let slot = actors.binary_search_by_key(&id, |(at, _)| *at).ok()? as u32;
    *hint = slot;
    Some(slot)
}

/// [`find`] through the tick's hot lines (which are in the same order as
/// its actors), so that a hint that holds costs no read of the actors.
fn find_hot(hot: &[Hot], id: ActorId, hint: &mut u32) -> Option<u32> {
    if hot.get(*hint as usize).is_some_and(|h| h.id == id) {
        return Some(*hint);
    }
    let slot = hot.binary_search_by_key(&id, |h| h.id).ok()? as u32;
    *hint = slot;
    Some(slot)
}

/// A spawn or frame update competing for the budget.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: ActorId,
    /// Its slot in the tick's actors.
    slot: u32,
    /// Filled in only when the budget forces a choice.
    priority: u64,
    /// Ticks since it was last sent.
    staleness: u64,
    /// -1: the player's own actor.
    distance2: i64,
    /// A spawn (else an update of frame properties in `mask`).
    spawn: bool,
    /// It fits this tick's budget.
    taken: bool,
    /// The properties of an update; for a shared unit, its "since" choice.
    mask: u64,
    cost: u32,
    /// A shared unit (`slot` is then its index in `ClientView::units`), or
    /// `NO_UNIT` for an actor.
    unit: u32,
}

/// Whom one replication is for: a player of the line, or an observer of
/// the whole line (a recording), which owns nothing and steers nothing.
pub(crate) struct Viewer<'a> {
    /// Staggers the relevancy passes of viewers.
    pub stagger: u64,
    /// The player whose owner-only properties it sees (`None`: an
    /// observer, who sees no one's).
    pub owner: Option<PlayerId>,
    pub view: &'a mut ClientView,
    pub steer: &'a mut Steering,
    pub outbox: &'a mut Vec<u8>,
    pub outbox_items: &'a mut u32,
    /// Bytes it may be sent this tick.
    pub budget: u32,
}

impl<'a> Viewer<'a> {
    /// A player, sent `budget_permille` thousandths of its budget (see
    /// `Shedding`).
    pub fn player<P>(id: PlayerId, player: &'a mut PlayerState<P>, budget_permille: u32) -> Self {
        let budget = (u64::from(player.budget) * u64::from(budget_permille) / 1000) as u32;
        Self {
            stagger: id,
            owner: Some(id),
            view: &mut player.view,
            steer: &mut player.steer,
            outbox: &mut player.outbox,
            outbox_items: &mut player.outbox_items,
            budget: budget.max(MIN_BUDGET.min(player.budget)),
        }
    }

    pub fn observer(number: u32, observer: &'a mut Observer) -> Self {
        Self {
            stagger: u64::from(number),
            owner: None,
            view: &mut observer.view,
            steer: &mut observer.steer,
            outbox: &mut observer.outbox,
            outbox_items: &mut observer.outbox_items,
            budget: OBSERVER_BUDGET,
        }
    }
}

/// Bytes an observer of the whole line (a recording, which loses nothing)
/// may be sent per tick: enough for a crowded line's every change.
pub const OBSERVER_BUDGET: u32 = 1 << 20;

/// Encodes this tick's messages for `viewer`: (reliable messages, frame).
#[allow(clippy::too_many_arguments)]
pub(crate) fn replicate(
    stats: &mut GameStats,
    tick: u64,
    tick_hz: u32,
    viewer: Viewer<'_>,
    actors: Actors<'_>,
    schema: &Schema,
    masks: &[KindMasks],
    space: &Space,
    scratch: &mut Scratch,
) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let Viewer {
        stagger,
        owner: player_id,
        view,
        steer,
        outbox,
        outbox_items,
        budget,
    } = viewer;
    // A saturated client waits for its turn (staggered by player), unless
    // something must not wait: its first frame, its control or a
    // correction of its own actor, or the game's messages to it.
    let period = 1u64 << view.frame_shift;
    let must_go = !view.joined_sent
        || steer.announce
        || steer.corrected
        || *outbox_items > 0
        || view.entries.is_empty();
    if period > 1 && tick.wrapping_add(stagger) % period != 0 && !must_go {
        stats.frames_paused += 1;
        return (Vec::new(), None);
    }
    let span = tick.saturating_sub(view.replicated_at).clamp(1, period);
    view.replicated_at = tick;
    let budget = (u64::from(budget) * span).min(u64::from(u32::MAX)) as u32;
    let own = steer.actor;
    let centre = own
        .and_then(|id| find(actors, id, &mut 0))
        .map(|slot| actors[slot as usize].1)
        .filter(|actor| space.moves(actor.kind))
        .map(movement::position);

    // Who is relevant, in id order. The grid (or every actor, for a player
    // who controls nothing) is asked every RELEVANCY_PERIOD ticks, staggered
    // by player, and at once for a player with nothing in view; in between
    // only the actors already in view are looked at (updates and despawns
    // are not delayed; a newcomer is spawned up to three ticks later, in a crowd fifteen).
    scratch.relevant.clear();
    let view_out2 = space.view_out * space.view_out;
    // A client in a crowd is sent the moving actors' updates in shared
    // units; on a quiet tick between relevancy passes, its view entries
    // are not looked at at all, but for its own actor's.
    let crowd = player_id.is_some() && centre.is_some() && view.entries.len() >= CROWD_ENTRIES;
    let relevancy_period = match crowd {
        true => CROWD_RELEVANCY_PERIOD,
        false => RELEVANCY_PERIOD,
    };
    let relevancy_pass = view.entries.is_empty()
        || steer.announce
        || tick.wrapping_add(stagger) % relevancy_period == 0;
    // No actor gone since this client last looked, and no reliable change
    // to send.
    let quiet = scratch.slots_kept
        && view.seen_epoch == scratch.slots_epoch
        && scratch.newest_reliable <= view.reliable_through;
    view.seen_epoch = scratch.slots_epoch;
    // On such a tick only the own actor's entry, and those of actors the
    // units do not carry to this client (`pick_uncovered`), are looked at.
    let own_only = crowd && quiet && !relevancy_pass;
    scratch.picked_entries.clear();
    if own_only {
        if let Some(id) = own {
            let hint = view.own_entry as usize;
            let found = match view.entries.get(hint) {
                Some(entry) if entry.id == id => Ok(hint),
                _ => view.entries.binary_search_by_key(&id, |e| e.id),
            };
            if let Ok(at) = found {
                view.own_entry = at as u32;
                let entry = &mut view.entries[at];
                if let Some(slot) = find_hot(&scratch.hot, id, &mut entry.slot) {
                    scratch.relevant.push((id, -1, slot));
                    scratch.picked_entries.push(at as u32);
                }
            }
        }
    } else if !relevancy_pass {
        // An entry within its refresh period (from where it was when last
        // looked at) need not be looked at on a quiet tick, which in a
        // crowd is most of them.
        let far_shift = space.far_refresh_shift;
        let view_in2 = space.view_in * space.view_in;
        for entry in view.entries.iter_mut() {
            let id = entry.id;
            if quiet
                && Some(id) != own
                && ticks_since(tick, entry.last_sent)
                    < refresh_period(
                        i64::from(entry.distance2),
                        view_in2,
                        far_shift,
                        view.crowd_shift,
                    )
            {
                scratch.relevant.push((id, NOT_LOOKED_AT, entry.slot));
                continue;
            }
            let Some(slot) = find_hot(&scratch.hot, id, &mut entry.slot) else {
                continue;
            };
            let hot = &scratch.hot[slot as usize];
            if Some(id) == own {
                scratch.relevant.push((id, -1, slot));
            } else if !hot.moves {
                scratch.relevant.push((id, 0, slot));
            } else {
                let distance2 = match centre {
                    Some(centre) => hot.pos.distance_squared(centre),
                    None => 0,
                };
                if distance2 <= view_out2 {
                    scratch.relevant.push((id, distance2, slot));
                }
            }
        }
    } else {
        match centre {
            Some(centre) => {
                // The grid's near actors, marked in a bitset by their index
                // in `moving` (which is in id order): read back in order,
                // they need no sort.
                let moving = &scratch.moving;
                let bits = &mut scratch.near;
                let (mut low, mut high) = (usize::MAX, 0);
                scratch.grid.for_each_near(centre, space.view_out, |index| {
                    let word = index as usize / 64;
                    bits[word] |= 1 << (index % 64);
                    low = low.min(word);
                    high = high.max(word);
                });
                let relevant = &mut scratch.relevant;
                for word in low..=high.min(bits.len().saturating_sub(1)) {
                    let mut rest = std::mem::take(&mut bits[word]);
                    while rest != 0 {
                        let index = word * 64 + rest.trailing_zeros() as usize;
                        rest &= rest - 1;
                        let (id, pos, slot) = moving[index];
                        let distance2 = pos.distance_squared(centre);
                        if Some(id) == own {
                            relevant.push((id, -1, slot));
                        } else if distance2 <= view_out2 {
                            relevant.push((id, distance2, slot));
                        }
                    }
                }
                if !scratch.fixed.is_empty() {
                    // Both in id order: merged.
                    let merged = &mut scratch.merged;
                    merged.clear();
                    let mut fixed = scratch.fixed.iter().peekable();
                    for &item in relevant.iter() {
                        while let Some(&(id, slot)) = fixed.next_if(|(f, _)| *f < item.0) {
                            merged.push((id, 0, slot));
                        }
                        merged.push(item);
                    }
                    merged.extend(fixed.map(|&(id, slot)| (id, 0, slot)));
                    std::mem::swap(relevant, merged);
                }
            }
            None => {
                scratch
                    .relevant
                    .extend(actors.iter().enumerate().map(|(slot, (id, _))| {
                        (*id, if Some(*id) == own { -1 } else { 0 }, slot as u32)
                    }))
            }
        }
    }

    let mut items = std::mem::take(&mut scratch.items);
    items.clear();
    // Where each item (or the game's queued messages, as one unit) ends in
    // `items`, and how many items it holds: a tick's items are split into
    // messages of at most MAX_RELIABLE_BYTES at these boundaries.
    let mut units = std::mem::take(&mut scratch.units);
    units.clear();
    if !view.joined_sent {
        view.joined_sent = true;
        GameItem::Joined {
            version: schema.version().to_owned(),
            tick_hz,
            map: space
                .zone
                .as_ref()
                .map(|z| z.spec.map.clone())
                .unwrap_or_default(),
            view_radius: (space.view_in / i64::from(UNITS_PER_CELL)) as u32,
            speeds: space
                .movement
                .iter()
                .map(|m| m.map_or(0, |m| m.speed))
                .collect(),
            entry: view.entry,
        }
        .encode(schema, &|_| None, &mut items);
        units.push((items.len(), 1));
    }

    // One pass over the view and the relevant: both (sets now, frame
    // update if due), relevant only (spawn if within the entering radius),
    // view only (gone or out of view: despawn).
    scratch.candidates.clear();
    let view_in2 = space.view_in * space.view_in;
    let far_shift = space.far_refresh_shift;
    match centre {
        Some(centre) if crowd => {
            prepare_units(view, scratch, actors, centre, space, relevancy_pass);
            if own_only {
                pick_uncovered(view, scratch, centre, view_out2);
            }
        }
        _ => view.leave_crowd(),
    }
    let mut gone = std::mem::take(&mut scratch.gone);
    gone.clear();
    let mut relevant = scratch.relevant.iter().peekable();
    let picked = std::mem::take(&mut scratch.picked_entries);
    let (mut every, mut some) = (0..view.entries.len(), picked.iter());
    loop {
        let at = match own_only {
            true => some.next().map(|&at| at as usize),
            false => every.next(),
        };
        let Some(entry) = at.and_then(|at| view.entries.get_mut(at)) else {
            break;
        };
        let id = &entry.id;
        while let Some(&(_, distance2, slot)) = relevant.next_if(|(r, _, _)| r < id) {
            if distance2 <= view_in2 {
                scratch.candidates.push(spawn_candidate(
                    schema, masks, actors, slot, distance2, player_id,
                ));
            }
        }
        let Some(&(_, distance2, slot)) = relevant.next_if(|(r, _, _)| r == id) else {
            gone.push(*id);
            continue;
        };
        if distance2 == NOT_LOOKED_AT {
            continue;
        }
        entry.slot = slot;
        entry.distance2 = entry_distance2(distance2);
        let hot = &scratch.hot[slot as usize];
        let dormant = hot.reliable_changed <= view.reliable_through
            && (hot.frame_changed <= entry.acked
                || ticks_since(tick, entry.last_sent)
                    < refresh_period(distance2, view_in2, far_shift, view.crowd_shift));
        if dormant {
            continue;
        }
        let actor = actors[slot as usize].1;
        let kind = &masks[usize::from(hot.kind)];
        let visible = kind.everyone | if entry.owned { kind.owner } else { 0 };
        let reliable = if hot.reliable_changed > view.reliable_through {
            changed_since(actor, kind.reliable & visible, view.reliable_through)
        } else {
            0
        };
        if reliable != 0 {
            put_set(
                &mut items,
                &schema.kinds()[usize::from(hot.kind)],
                *id,
                reliable,
                &actor.values,
            );
            units.push((items.len(), 1));
        }
        // In a crowd, a moving actor of a unit the client is sent whole
        // goes in that unit (but for those it owns whose kind has frame
        // properties only an owner sees, which a unit does not carry).
        let covered = crowd && hot.moves && (!entry.owned || kind.owner & kind.frame == 0) && {
            let unit = scratch.blocks.unit_of(slot) as usize;
            scratch
                .ready_units
                .get(unit / 64)
                .is_some_and(|word| word & (1 << (unit % 64)) != 0)
        };
        if !covered
            && hot.frame_changed > entry.acked
            && ticks_since(tick, entry.last_sent)
                >= refresh_period(distance2, view_in2, far_shift, view.crowd_shift)
        {
            let mask = match &kind.hot_frame {
                Some(bits) => {
                    let mut mask = 0;
                    for (at, bit) in hot.frame_ticks.iter().zip(bits) {
                        if *at > entry.acked {
                            mask |= bit;
                        }
                    }
                    mask & visible
                }
                None => changed_since(actor, kind.frame & visible, entry.acked),
            };
            if mask != 0 {
                let fresh = &mut scratch.fresh[slot as usize];
                if fresh.stamp != tick || fresh.mask != mask {
                    let start = scratch.encoded_bytes.len();
                    put_update(
                        &mut scratch.encoded_bytes,
                        &schema.kinds()[usize::from(hot.kind)],
                        *id,
                        mask,
                        &actor.values,
                    );
                    *fresh = Fresh {
                        stamp: tick,
                        mask,
                        start: start as u32,
                        len: (scratch.encoded_bytes.len() - start) as u32,
                    };
                }
                scratch.candidates.push(Candidate {
                    id: *id,
                    slot,
                    priority: 0,
                    staleness: ticks_since(tick, entry.last_sent),
                    distance2,
                    spawn: false,
                    taken: false,
                    mask,
                    cost: fresh.len,
                    unit: NO_UNIT,
                });
            }
        }
    }
    scratch.picked_entries = picked;
    for &(_, distance2, slot) in relevant {
        if distance2 <= view_in2 {
            scratch.candidates.push(spawn_candidate(
                schema, masks, actors, slot, distance2, player_id,
            ));
        }
    }
    if crowd {
        clear_ready_units(view, scratch);
        // An actor despawned this tick may still stand in a unit near the
        // client: that unit waits (a frame naming an actor the client has
        // just dropped could not be read to its end).
        for id in &gone {
            if let Some(slot) = find_hot(&scratch.hot, *id, &mut 0) {
                let unit = scratch.blocks.unit_of(slot);
                if let Ok(at) = view.units.binary_search_by_key(&unit, |u| u.unit) {
                    view.units[at].ready = false;
                }
            }
        }
    }
    if let (true, Some(centre)) = (crowd, centre) {
        for (index, unit) in view.units.iter().enumerate() {
            if !unit.ready {
                continue;
            }
            let distance2 = scratch.blocks.centre(unit.unit).distance_squared(centre);
            let staleness = ticks_since(tick, unit.last_sent);
            if staleness < refresh_period(distance2, view_in2, far_shift, view.crowd_shift) {
                continue;
            }
            let class = Blocks::class_for(tick, unit.acked);
            let encoded = scratch
                .blocks
                .encoded(tick, unit.unit, class, actors, masks, schema);
            if encoded.count == 0 {
                continue;
            }
            scratch.candidates.push(Candidate {
                id: ActorId(unit.unit),
                slot: index as u32,
                priority: 0,
                staleness,
                distance2,
                spawn: false,
                taken: false,
                mask: class as u64,
                cost: encoded.len,
                unit: unit.unit,
            });
        }
    }

    // The budget: headers, what must go (sets so far, the game's messages,
    // despawns), then spawns and updates by priority.
    let despawn_cost: usize = gone
        .iter()
        .map(|id| 1 + hearth_codec::varint_len(u64::from(id.0)))
        .sum();
    let left = i64::from(budget)
        - (FRAME_HEADER_MAX + RELIABLE_HEADER_MAX + items.len() + outbox.len()) as i64
        - despawn_cost as i64;
    let wanted: i64 = scratch.candidates.iter().map(|c| i64::from(c.cost)).sum();
    // The candidates were found in id order, and stay in it: spawns and
    // updates go out in id order, which keeps the output deterministic
    // whatever the priorities were.
    if wanted > left {
        let before = scratch.candidates.len();
        choose_by_priority(&mut scratch.candidates, left);
        scratch.candidates.retain(|c| c.taken);
        let deferred = before - scratch.candidates.len();
        if player_id.is_some() {
            stats.deferred += deferred as u64;
        }
        // Far more wanted the budget than it held: look at the actors
        // beyond a quarter of the view radius less often, and once that is
        // not enough, at the client less often.
        if deferred > 2 * scratch.candidates.len() {
            if view.crowd_shift < MAX_CROWD_SHIFT {
                view.crowd_shift += 1;
            } else if view.frame_shift < MAX_FRAME_SHIFT {
                view.frame_shift += 1;
            }
        }
    } else if wanted * 2 < left {
        // Room to spare: more often again, the client first.
        if view.frame_shift > 0 {
            view.frame_shift -= 1;
        } else if view.crowd_shift > 0 {
            view.crowd_shift -= 1;
        }
    }

    let mut spawned = false;
    for c in scratch.candidates.iter().filter(|c| c.spawn) {
        spawned = true;
        let actor = actors[c.slot as usize].1;
        let owned = player_id.is_some() && actor.owner == player_id;
        put_spawn(
            &mut items,
            schema,
            actor.kind,
            c.id,
            owned,
            c.mask,
            &actor.values,
        );
        units.push((items.len(), 1));
        // The spawn carries every property as of this tick.
        view.entries.push(ViewEntry {
            id: c.id,
            acked: tick,
            owned,
            last_sent: tick as u32,
            carried: 0,
            slot: c.slot,
            distance2: entry_distance2(c.distance2),
        });
    }
    if std::mem::take(&mut steer.announce) {
        GameItem::Control { id: own }.encode(schema, &|_| None, &mut items);
        units.push((items.len(), 1));
    }
    items.extend_from_slice(outbox);
    if *outbox_items > 0 {
        units.push((items.len(), *outbox_items as usize));
    }
    outbox.clear();
    *outbox_items = 0;
    for &id in &gone {
        GameItem::Despawn { id }.encode(schema, &|_| None, &mut items);
        units.push((items.len(), 1));
    }
    if !gone.is_empty() {
        // Both in id order: one walk.
        let mut gone_ids = gone.iter().peekable();
        view.entries.retain(|e| {
            while gone_ids.next_if(|g| **g < e.id).is_some() {}
            gone_ids.next_if(|g| **g == e.id).is_none()
        });
    }
    // The spawns were appended in id order after the (sorted) entries: a
    // stable sort of two sorted runs is one merge.
    if spawned {
        view.entries.sort_by_key(|e| e.id);
    }
    if spawned || !gone.is_empty() {
        view.known_valid = false;
    }
    view.reliable_through = tick;

    let mut reliable = Vec::new();
    let (mut start, mut from, mut count) = (0usize, 0usize, 0usize);
    for (at, &(end, items_in_unit)) in units.iter().enumerate() {
        if count > 0 && end - from > MAX_RELIABLE_BYTES {
            reliable.push(reliable_message(tick, count, &items[from..start]));
            from = start;
            count = 0;
        }
        count += items_in_unit;
        start = end;
        if at + 1 == units.len() {
            reliable.push(reliable_message(tick, count, &items[from..end]));
        }
    }

    let updates = scratch.candidates.iter().filter(|c| !c.spawn);
    let blocks = &mut scratch.blocks;
    let update_count: usize = updates
        .clone()
        .map(|c| match c.unit {
            NO_UNIT => 1,
            unit => {
                blocks
                    .encoded(tick, unit, c.mask as usize, actors, masks, schema)
                    .count as usize
            }
        })
        .sum();
    let frame = (update_count > 0 || steer.moved || steer.corrected).then(|| {
        let size: usize = updates.clone().map(|c| c.cost as usize).sum();
        let mut bytes = Vec::with_capacity(FRAME_HEADER_MAX + size);
        put_frame_header(
            &mut bytes,
            FrameHeader {
                tick,
                input_ack: steer.last_seq,
                corrected: steer.corrected,
                entry: view.entry,
            },
            update_count,
        );
        let bit = view.sent_frame(tick);
        for c in updates.clone() {
            if c.unit != NO_UNIT {
                // Encoded when it became a candidate, for this choice.
                let encoded = blocks.encoded(tick, c.unit, c.mask as usize, actors, masks, schema);
                bytes.extend_from_slice(blocks.bytes(encoded));
                stats.shared_updates += u64::from(encoded.count);
                let unit = &mut view.units[c.slot as usize];
                unit.last_sent = tick as u32;
                unit.carried |= bit;
                continue;
            }
            // Encoded when it became a candidate, with this mask.
            let encoded = scratch.fresh[c.slot as usize];
            debug_assert_eq!(encoded.mask, c.mask);
            let start = encoded.start as usize;
            bytes.extend_from_slice(&scratch.encoded_bytes[start..start + encoded.len as usize]);
        }
        // Carried in id order, like the entries: one walk marks them sent.
        let mut sent = updates
            .filter(|c| c.unit == NO_UNIT)
            .map(|c| c.id)
            .peekable();
        if sent.peek().is_some() {
            view.frames_with_entries |= bit;
        }
        let mark = |entry: &mut ViewEntry| {
            entry.last_sent = tick as u32;
            entry.carried |= bit;
        };
        if sent.clone().count() * 16 < view.entries.len() {
            // A crowd's frame carries few entries: each found, not walked to.
            for id in sent {
                if let Ok(at) = view.entries.binary_search_by_key(&id, |e| e.id) {
                    mark(&mut view.entries[at]);
                }
            }
        } else {
            for entry in view.entries.iter_mut() {
                let Some(&next) = sent.peek() else { break };
                if next == entry.id {
                    mark(entry);
                    sent.next();
                }
            }
        }
        steer.moved = false;
        steer.corrected = false;
        bytes
    });
    let sent = reliable.iter().map(Vec::len).sum::<usize>() + frame.as_ref().map_or(0, Vec::len);
    match player_id {
        Some(_) => stats.bytes_out += sent as u64,
        None => stats.bytes_to_observers += sent as u64,
    }
    scratch.items = items;
    scratch.units = units;
    scratch.gone = gone;
    (reliable, frame)
}

/// For a client in a crowd: which actors it knows (when its entries or the
/// tick's slots changed), which shared units are near it (on a relevancy
/// pass), and which of them it knows every actor of.
fn prepare_units(
    view: &mut ClientView,
    scratch: &mut Scratch,
    actors: Actors<'_>,
    centre: Pos,
    space: &Space,
    relevancy_pass: bool,
) {
    if !view.known_valid || view.known_epoch != scratch.slots_epoch {
        view.known.clear();
        view.known.resize(actors.len().div_ceil(64), 0);
        for entry in view.entries.iter_mut() {
            if let Some(slot) = find_hot(&scratch.hot, entry.id, &mut entry.slot) {
                view.known[slot as usize / 64] |= 1 << (slot % 64);
            }
        }
        view.known_valid = true;
        view.known_epoch = scratch.slots_epoch;
    }
    if relevancy_pass || view.units.is_empty() {
        scratch
            .blocks
            .units_near(centre, space.view_out, &mut scratch.near_units);
        // Both in unit order: what the client has of a unit still near is
        // kept, a unit no longer near is forgotten.
        let merged = &mut scratch.merged_units;
        merged.clear();
        let mut had = view.units.iter().peekable();
        for &unit in &scratch.near_units {
            while had.next_if(|u| u.unit < unit).is_some() {}
            merged.push(match had.next_if(|u| u.unit == unit) {
                Some(kept) => *kept,
                None => UnitView {
                    unit,
                    acked: 0,
                    carried: 0,
                    last_sent: 0,
                    ready: false,
                },
            });
        }
        std::mem::swap(&mut view.units, merged);
    }
    let known = &view.known;
    let is_known = |slot: u32| {
        known
            .get(slot as usize / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    };
    let ready_units = &mut scratch.ready_units;
    ready_units.resize(scratch.blocks.unit_count().div_ceil(64), 0);
    for unit in view.units.iter_mut() {
        unit.ready = scratch.blocks.members(unit.unit).all(is_known);
        if unit.ready {
            let at = unit.unit as usize;
            ready_units[at / 64] |= 1 << (at % 64);
        }
    }
}

/// On a crowded client's quiet tick, adds to the entries looked at (the
/// own actor's, if any, already picked) those of the actors it has in
/// units it is not sent whole (one with a member it does not know yet,
/// a unit at the edge of its view): their updates go one by one, as on
/// any other tick, instead of waiting for the next relevancy pass.
fn pick_uncovered(view: &ClientView, scratch: &mut Scratch, centre: Pos, view_out2: i64) {
    let own = scratch.relevant.first().map(|&(id, _, _)| id);
    for unit in view.units.iter().filter(|u| !u.ready) {
        for slot in scratch.blocks.members(unit.unit) {
            let hot = &scratch.hot[slot as usize];
            if Some(hot.id) == own {
                continue;
            }
            let Ok(at) = view.entries.binary_search_by_key(&hot.id, |e| e.id) else {
                continue;
            };
            scratch.picked_entries.push(at as u32);
            // Walked out of view: not relevant, so despawned.
            let distance2 = hot.pos.distance_squared(centre);
            if distance2 <= view_out2 {
                scratch.relevant.push((hot.id, distance2, slot));
            }
        }
    }
    // Entries and slots are both in id order.
    scratch.picked_entries.sort_unstable();
    scratch.relevant.sort_unstable_by_key(|&(id, _, _)| id);
}

/// Clears what [`prepare_units`] marked of one client's units.
fn clear_ready_units(view: &ClientView, scratch: &mut Scratch) {
    for unit in view.units.iter().filter(|u| u.ready) {
        let at = unit.unit as usize;
        if let Some(word) = scratch.ready_units.get_mut(at / 64) {
            *word &= !(1 << (at % 64));
        }
    }
}

fn spawn_candidate(
    schema: &Schema,
    masks: &[KindMasks],
    actors: Actors<'_>,
    slot: u32,
    distance2: i64,
    player: Option<PlayerId>,
) -> Candidate {
    let (id, actor) = actors[slot as usize];
    let owned = player.is_some() && actor.owner == player;
    let kind = &masks[usize::from(actor.kind)];
    let visible = kind.everyone | if owned { kind.owner } else { 0 };
    let mask = not_default(actor, visible, &kind.defaults);
    Candidate {
        id,
        slot,
        priority: 0,
        // A spawn waits as if eight ticks stale: ahead of fresh updates of
        // actors at the same distance, behind long-starved ones.
        staleness: 8,
        distance2,
        spawn: true,
        taken: false,
        unit: NO_UNIT,
        mask,
        cost: (4
            + hearth_codec::varint_len(u64::from(id.0))
            + hearth_replica::game_wire::masked_state_len(
                &schema.kinds()[usize::from(actor.kind)],
                mask,
                &actor.values,
            )) as u32,
    }
}

/// The bits of `count` frames from frame number `first` on (see
/// `ClientView::next_frame`).
fn frame_bits(first: u64, count: u64) -> u32 {
    if count >= 32 {
        return u32::MAX;
    }
    let run = (1u32 << count) - 1;
    run.rotate_left((first % 32) as u32)
}

/// Ticks between frame updates of an actor at `distance2`: every tick
/// within a quarter of the view radius (and for the player's own actor and
/// actors that do not move), within half of it every tick unless the
/// client is in a crowd, every 2nd within three quarters, every 4th beyond
/// (Unreal's update frequency by relevance); the far ones less often while
/// the host sheds (`far_shift`), all beyond the quarter less often in a
/// crowd (`crowd_shift`).
fn refresh_period(distance2: i64, view_in2: i64, far_shift: u32, crowd_shift: u8) -> u64 {
    let crowd_shift = u32::from(crowd_shift);
    if distance2 * 16 <= view_in2 {
        1
    } else if distance2 * 4 <= view_in2 {
        1 << crowd_shift
    } else if distance2 * 16 <= view_in2 * 9 {
        2 << (far_shift + crowd_shift)
    } else {
        4 << (far_shift + crowd_shift)
    }
}

/// Priority classes (see [`priority_class`]).
const PRIORITY_CLASSES: usize = 256;

/// A quarter-doubling logarithm: 4 × log2(value) plus the two bits after
/// the leading one (0 for 0).
fn log2_quarters(value: u64) -> u64 {
    if value < 4 {
        return value;
    }
    let log = 63 - u64::from(value.leading_zeros());
    log * 4 + ((value >> (log - 2)) & 3)
}

/// Unreal's net priority, staleness over distance, as a class of a quarter
/// doubling (candidates of one class are alike enough to be taken in id
/// order): the player's own actor (`distance2` -1) above everything; then
/// stale and near first. Logarithms, so a crowd's candidates cost no
/// division or square root each.
fn priority_class(staleness: u64, distance2: i64) -> u64 {
    if distance2 < 0 {
        return PRIORITY_CLASSES as u64 - 1;
    }
    let cells2 = distance2 as u64 / (UNITS_PER_CELL as u64 * UNITS_PER_CELL as u64);
    // log(staleness / cells) = log(staleness) - log(cells²) / 2; staleness
    // is at most 2^20 (83 quarters), log(cells²) / 2 at most 126.
    (128 + log2_quarters(staleness.min(1 << 20)))
        .saturating_sub(log2_quarters(cells2 + 1) / 2)
        .min(PRIORITY_CLASSES as u64 - 2)
}

/// Marks the candidates that `left` bytes take, by priority: whole
/// classes from the highest while they fit, then of the class that does
/// not fit whole, those that fit in id order (skipping at most
/// [`MAX_MISSES`] too large). Counted, not sorted: a crowd's hundreds of
/// candidates per client per tick cost a pass each, not a sort.
fn choose_by_priority(candidates: &mut [Candidate], mut left: i64) {
    let mut class_cost = [0i64; PRIORITY_CLASSES];
    for c in candidates.iter_mut() {
        c.priority = priority_class(c.staleness, c.distance2);
        class_cost[c.priority as usize] += i64::from(c.cost);
    }
    // Classes at or above `whole` fit whole.
    let mut whole = PRIORITY_CLASSES;
    while whole > 0 && class_cost[whole - 1] <= left {
        left -= class_cost[whole - 1];
        whole -= 1;
    }
    let partial = whole.checked_sub(1).map(|class| class as u64);
    let mut misses = 0;
    let mut taken_any = false;
    for c in candidates.iter_mut() {
        if c.priority >= whole as u64 {
            c.taken = true;
            taken_any = true;
        } else if Some(c.priority) == partial && misses <= MAX_MISSES {
            if i64::from(c.cost) <= left {
                left -= i64::from(c.cost);
                c.taken = true;
                taken_any = true;
            } else {
                misses += 1;
            }
        }
    }
    if !taken_any {
        // The first of the highest class goes whatever its size: an actor
        // larger than the whole budget would otherwise never reach this
        // client.
        if let Some(first) = candidates
            .iter_mut()
            .max_by_key(|c| (c.priority, Reverse(c.id)))
        {
            first.taken = true;
        }
    }
}

/// The properties in `candidates` that changed after `tick`.
fn changed_since(actor: &ActorState, candidates: u64, tick: u64) -> u64 {
    crate::blocks::changed_after(&actor.changed, candidates, tick)
}

/// The properties in `candidates` whose value is not their type's default
/// (a client starts every property at its default).
fn not_default(actor: &ActorState, candidates: u64, defaults: &[Value]) -> u64 {
    let mut mask = 0;
    let mut rest = candidates;
    while rest != 0 {
        let index = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if actor.values[index] != defaults[index] {
            mask |= 1 << index;
        }
    }
    mask
}

fn reliable_message(tick: u64, count: usize, items: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(items.len() + 10);
    put_reliable_header(&mut bytes, tick, count);
    bytes.extend_from_slice(items);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32) -> ViewEntry {
        ViewEntry {
            id: ActorId(id),
            acked: 0,
            owned: false,
            last_sent: 0,
            carried: 0,
            slot: 0,
            distance2: 0,
        }
    }

    #[test]
    fn an_acknowledgement_counts_each_actor_at_the_newest_applied_frame_that_carried_it() {
        let mut view = ClientView::entered(0);
        view.entries = vec![entry(1), entry(2), entry(3), entry(4)];
        // Frames of ticks 10, 11 and 13: actor 1 in all, 2 in 10 and 11,
        // 3 only in 11, 4 only in 13.
        let carried: [&[usize]; 3] = [&[0, 1], &[0, 1, 2], &[0, 3]];
        for (tick, carried) in [10, 11, 13].into_iter().zip(carried) {
            let bit = view.sent_frame(tick);
            // As replication marks a frame that carried entries.
            view.frames_with_entries |= bit;
            for &at in carried {
                view.entries[at].carried |= bit;
            }
        }
        // The client applied 13 and 10 (bit 2: tick 13 - 1 - 2), not 11.
        assert!(view.acknowledge(13, 0b100));
        let acked: Vec<u64> = view.entries.iter().map(|e| e.acked).collect();
        assert_eq!(acked, [13, 10, 0, 13], "3 came only in the lost frame");
        assert!(view.entries.iter().all(|e| e.carried == 0));
        assert!(view.in_flight.is_empty());
        assert!(!view.acknowledge(11, 0), "no longer in flight");
    }

    #[test]
    fn a_view_entry_is_32_bytes() {
        // What a client in a crowd of 2,000 costs per actor it sees.
        assert_eq!(std::mem::size_of::<ViewEntry>(), 32);
    }

    #[test]
    fn an_acknowledgement_past_a_wrapped_window_finds_its_frames() {
        let mut view = ClientView::entered(0);
        view.entries = vec![entry(1)];
        // More frames than the window: bits wrap around the 64.
        for tick in 1..=(MAX_IN_FLIGHT as u64 + 10) {
            let bit = view.sent_frame(tick);
            if tick % 2 == 0 {
                view.frames_with_entries |= bit;
                view.entries[0].carried |= bit;
            }
        }
        let last = MAX_IN_FLIGHT as u64 + 10;
        // Applied: the last but one (which carried it) and the last.
        assert!(view.acknowledge(last, 0b1));
        assert_eq!(view.entries[0].acked, last);
        assert_eq!(view.entries[0].carried, 0);
    }
}
