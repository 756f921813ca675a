//! The built-in game written on the game API (`hearth-game`), with nothing
//! private: players who walk the zones' maps (Hearth moves them, checks
//! their moves and keeps their facing) and go from zone to zone through
//! portals, NPCs who wander near home and rest, line changes on request,
//! and chat (line, zone, whispers by name anywhere, announcements) checked
//! by Hearth's text rules, rate-limited by the schema and filtered by the
//! studio's [`ChatHook`]. What any game can do, this one does the same
//! way; what it needs that a game could not do is a gap in the API, not a
//! private door.
//!
//! The wire it speaks is the game API's (`game_wire`, its schema published
//! at `/api/schema`), not the older built-in world wire of [`crate::wire`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hearth_game::schema::{KindSpec, MessageSpec, Movement, PropSpec, Schema, Value, ValueType};
use hearth_game::{ActorId, Ctx, Game, KindId, MessageId, PlayerId, PropId, Refused, TimerId};
use serde::{Deserialize, Serialize};

use crate::chat::{bounded, check_text, ChatHook, ChatScope, ChatVerdict, CHAT_BURST};
use crate::geometry::{Pos, UNITS_PER_CELL};
use crate::zone::Zone;

/// Longest chat text, in bytes of UTF-8.
pub const MAX_CHAT: usize = 256;
/// Longest zone name.
pub const MAX_ZONE_NAME: usize = 32;
/// Longest refusal reason.
pub const MAX_REASON: usize = 256;
/// Longest actor name, in bytes.
pub const MAX_ACTOR_NAME: usize = 32;
/// Values a new player starts with: health, level, score, and a fourth
/// the game may use.
pub const NEW_PLAYER_VALUES: [i32; 4] = [100, 1, 0, 0];

/// How far from home an NPC wanders, in cells.
const WANDER_CELLS: i64 = 8;
/// How far from its spawn point an NPC's home is, in cells.
const HOME_CELLS: i64 = 6;
/// The four numbered values every player and NPC has (health, level, score,
/// and one the game may use), by property name.
pub const VALUE_NAMES: [&str; 4] = ["health", "level", "score", "extra"];

/// What Hearth keeps of a player of the built-in game between sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldPlayer {
    /// Where they were, in the zone they were in.
    pub zone: Option<String>,
    pub at: Option<Pos>,
    pub appearance: u32,
    pub values: [i32; 4],
}

impl Default for WorldPlayer {
    fn default() -> Self {
        Self {
            zone: None,
            at: None,
            appearance: 1,
            values: NEW_PLAYER_VALUES,
        }
    }
}

/// Why zones do not make a built-in game, to show to whoever wrote them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorldGameError(String);

/// The built-in game: the zones it plays, and the studio's chat filter.
pub struct WorldGame {
    /// At least one; the first is where new players start. They share one
    /// tick rate (the game's); each has its own walking speed, line
    /// capacity and view radius.
    zones: Vec<Zone>,
    hook: Option<Arc<dyn ChatHook>>,
}

impl WorldGame {
    /// The game over `zones`, which must tick at one rate (a game has one
    /// tick rate), and whose portals lead to zones among them.
    pub fn new(zones: Vec<Zone>) -> Result<Self, WorldGameError> {
        let Some(first) = zones.first() else {
            return Err(WorldGameError(
                "the built-in game needs at least one zone".to_owned(),
            ));
        };
        for zone in &zones {
            if zone.spec.tick_hz != first.spec.tick_hz {
                return Err(WorldGameError(format!(
                    "zone {:?} ticks {} times a second, zone {:?} {}: every zone of the built-in game ticks at one rate",
                    zone.name(),
                    zone.spec.tick_hz,
                    first.name(),
                    first.spec.tick_hz
                )));
            }
            if let Some(portal) = zone
                .spec
                .portals
                .iter()
                .find(|p| !zones.iter().any(|z| z.name() == p.to))
            {
                return Err(WorldGameError(format!(
                    "a portal of zone {:?} leads to {:?}, which is not a zone",
                    zone.name(),
                    portal.to
                )));
            }
        }
        Ok(Self { zones, hook: None })
    }

    fn first(&self) -> &Zone {
        &self.zones[0]
    }

    /// The fastest walking speed of any zone.
    fn fastest(&self) -> u32 {
        self.zones.iter().map(|z| z.spec.speed).max().unwrap_or(1)
    }

    /// Filters chat through the studio's hook (after Hearth's own checks).
    pub fn with_chat_hook(mut self, hook: Arc<dyn ChatHook>) -> Self {
        self.hook = Some(hook);
        self
    }
}

/// The schema's handles, looked up once per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ids {
    player: KindId,
    npc: KindId,
    /// Per kind (player, npc): name, appearance, then the four values.
    player_props: [PropId; 6],
    npc_props: [PropId; 6],
    say: MessageId,
    switch_line: MessageId,
    travel: MessageId,
    chat: MessageId,
    entered: MessageId,
    refused: MessageId,
}

/// What a player last asked of the host, so that a refusal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Asked {
    Line = 1,
    Travel = 2,
}

/// One line's state of the built-in game.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorldLine {
    ids: Ids,
    /// Players standing on a portal's cell: it takes them when they step
    /// onto it, not again while they stay (a refused travel is not asked
    /// again every tick).
    on_portal: BTreeSet<PlayerId>,
    /// What each player last asked of the host.
    asked: BTreeMap<PlayerId, Asked>,
    /// The NPCs' actors are spawned one after another when the line starts:
    /// the first one's id, and each one's home (where it wanders near) by
    /// its id's offset from the first.
    first_npc: u32,
    homes: Vec<Pos>,
}

/// An NPC rests (a timer tagged with its actor's id), walks somewhere near
/// home (a walk of Hearth's), rests again when the walk ends.
fn rest(ctx: &mut Ctx<'_, WorldPlayer>, npc: ActorId) {
    let hz = i64::from(ctx.tick_hz());
    let ticks = ctx.rng().range(hz, hz * 5) as u32;
    ctx.after(ticks, u64::from(npc.0));
}

fn int_of(ty_min: i64, ty_max: i64) -> ValueType {
    ValueType::int(ty_min, ty_max)
}

fn with_common_props(kind: KindSpec) -> KindSpec {
    let mut kind = kind
        .prop(PropSpec::new("name", ValueType::string(MAX_ACTOR_NAME as u16)).reliable())
        .prop(PropSpec::new("appearance", int_of(0, u32::MAX.into())).reliable());
    for name in VALUE_NAMES {
        kind = kind.prop(PropSpec::new(name, int_of(i32::MIN.into(), i32::MAX.into())).reliable());
    }
    kind
}

const CHAT_SCOPES: [&str; 4] = ["zone", "line", "whisper", "system"];
/// What a refusal is about (the `refused` message's `about`).
const REFUSALS: [&str; 3] = ["chat", "line", "travel"];

/// The built-in game's schema. It says players walk as fast as any zone
/// may let them (and NPCs half that): each zone's own speed reaches clients
/// in `Joined` (see `WorldGame::movement_in`), so the schema, and the pages
/// built on it, stay the same whatever the zone file says.
pub fn world_schema() -> Schema {
    let fastest = crate::zone::MAX_ZONE_SPEED;
    let player =
        with_common_props(KindSpec::moving("player", Movement::new(fastest)).with_facing());
    let npc = with_common_props(KindSpec::moving("npc", Movement::new(fastest / 2)).with_facing());
    let name = || ValueType::string(MAX_ACTOR_NAME as u16);
    let messages = vec![
        MessageSpec::to_server("say")
            .field("scope", ValueType::enumeration(&CHAT_SCOPES[..3]))
            .field("to", name())
            .field("text", ValueType::string(MAX_CHAT as u16))
            .rate(CHAT_BURST, 1),
        MessageSpec::to_server("switch_line")
            .field("line", ValueType::int(1, u32::MAX.into()))
            .rate(2, 1),
        MessageSpec::to_server("travel")
            .field("zone", ValueType::string(MAX_ZONE_NAME as u16))
            .rate(2, 1),
        MessageSpec::to_client("chat")
            .field("scope", ValueType::enumeration(&CHAT_SCOPES))
            .field("from", name())
            .field("to", name())
            .field("text", ValueType::string(MAX_CHAT as u16)),
        MessageSpec::to_client("entered").field("zone", ValueType::string(MAX_ZONE_NAME as u16)),
        MessageSpec::to_client("refused")
            .field("about", ValueType::enumeration(&REFUSALS))
            .field("reason", ValueType::string(MAX_REASON as u16)),
    ];
    Schema::new("world", vec![player, npc], messages).expect("the built-in schema is valid")
}

impl Ids {
    fn look_up(ctx: &Ctx<'_, WorldPlayer>) -> Self {
        let kind = |name| ctx.kind(name).expect("declared");
        let (player, npc) = (kind("player"), kind("npc"));
        let props = |kind| {
            let prop = |name| ctx.prop(kind, name).expect("declared");
            [
                prop("name"),
                prop("appearance"),
                prop(VALUE_NAMES[0]),
                prop(VALUE_NAMES[1]),
                prop(VALUE_NAMES[2]),
                prop(VALUE_NAMES[3]),
            ]
        };
        let message = |name| ctx.message(name).expect("declared");
        Ids {
            player,
            npc,
            player_props: props(player),
            npc_props: props(npc),
            say: message("say"),
            switch_line: message("switch_line"),
            travel: message("travel"),
            chat: message("chat"),
            entered: message("entered"),
            refused: message("refused"),
        }
    }
}

impl WorldLine {
    /// The NPCs of this line, for tests.
    pub fn npc_count(&self) -> usize {
        self.homes.len()
    }
}

fn set_common(
    ctx: &mut Ctx<'_, WorldPlayer>,
    actor: ActorId,
    props: &[PropId; 6],
    name: &str,
    appearance: u32,
    values: [i32; 4],
) {
    let name = bounded(name.to_owned(), MAX_ACTOR_NAME);
    ctx.set(actor, props[0], Value::Str(name.into()))
        .expect("a bounded name");
    ctx.set_int(actor, props[1], appearance.into())
        .expect("in range");
    for (prop, value) in props[2..].iter().zip(values) {
        ctx.set_int(actor, *prop, value.into()).expect("in range");
    }
}

impl Game for WorldGame {
    type Line = WorldLine;
    type Player = WorldPlayer;

    fn schema(&self) -> Schema {
        world_schema()
    }

    /// Players and NPCs may walk at their zone's speed (NPCs stroll at half
    /// of it: `walk_to_at`).
    fn movement_in(&self, zone: Option<&Zone>, kind: &KindSpec) -> Option<Movement> {
        let speed = zone.map_or(self.fastest(), |z| z.spec.speed);
        Some(Movement {
            speed,
            ..kind.movement?
        })
    }

    fn tick_hz(&self) -> u32 {
        self.first().spec.tick_hz
    }

    fn zones(&self) -> Vec<Zone> {
        self.zones.clone()
    }

    /// Players come back to the zone they left.
    fn entry_zone(&self, data: &WorldPlayer) -> Option<String> {
        data.zone.clone()
    }

    /// The protocol's default NetSpeed (what a client asks for unless told
    /// otherwise).
    fn bytes_per_second(&self) -> u32 {
        100_000
    }

    fn new_line(&self, ctx: &mut Ctx<'_, WorldPlayer>) -> WorldLine {
        let ids = Ids::look_up(ctx);
        let zone = ctx.zone().expect("the built-in game has maps").clone();
        let zone = &zone;
        let mut first_npc = None;
        let mut homes = Vec::with_capacity(zone.spec.npcs as usize);
        for i in 0..zone.spec.npcs as usize {
            let spawn = zone.spawns[i % zone.spawns.len()];
            let reach = HOME_CELLS * i64::from(UNITS_PER_CELL);
            let mut home = spawn;
            for _ in 0..8 {
                let candidate = Pos::new(
                    spawn.x + ctx.rng().range(-reach, reach) as i32,
                    spawn.y + ctx.rng().range(-reach, reach) as i32,
                );
                if zone.path_clear(spawn, candidate) {
                    home = candidate;
                    break;
                }
            }
            let actor = ctx.spawn(ids.npc, None);
            ctx.place(actor, home).expect("a home on the map");
            let name = format!("npc-{}", actor.0);
            set_common(
                ctx,
                actor,
                &ids.npc_props,
                &name,
                100 + (i as u32 % 8),
                [100, 1, 0, 0],
            );
            let first = *first_npc.get_or_insert(actor.0);
            debug_assert_eq!(actor.0 - first, homes.len() as u32, "spawned in a row");
            homes.push(home);
            rest(ctx, actor);
        }
        WorldLine {
            ids,
            on_portal: BTreeSet::new(),
            asked: BTreeMap::new(),
            first_npc: first_npc.unwrap_or(0),
            homes,
        }
    }

    fn on_join(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>, player: PlayerId) {
        let saved = ctx.player_data(player).cloned().unwrap_or_default();
        let actor = ctx.spawn(line.ids.player, Some(player));
        let name = ctx.name(player).unwrap_or("").to_owned();
        set_common(
            ctx,
            actor,
            &line.ids.player_props,
            &name,
            saved.appearance,
            saved.values,
        );
        let zone = ctx.zone().expect("the built-in game has maps").clone();
        let here = saved.zone.as_deref() == Some(zone.name());
        let legal = |at: &Pos| zone.in_bounds(*at) && !zone.blocked(*at);
        // Where a travel brought them, else where they left this zone.
        let at = ctx
            .arrival(player)
            .filter(legal)
            .or(saved.at.filter(|at| here && legal(at)))
            .unwrap_or_else(|| {
                let index = ctx.rng().range(0, zone.spawns.len() as i64) as usize;
                zone.spawns[index]
            });
        ctx.place(actor, at).expect("a legal spot");
        ctx.control(player, Some(actor)).expect("players move");
        let zone = Value::Str(ctx.zone_name().into());
        let _ = ctx.send(player, line.ids.entered, &[zone]);
    }

    /// Where the player stands goes into their data before each save.
    fn before_save(&self, _: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>, player: PlayerId) {
        record(ctx, player);
    }

    fn on_leave(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>, player: PlayerId) {
        line.on_portal.remove(&player);
        line.asked.remove(&player);
        record(ctx, player);
        if let Some(actor) = ctx.controlled_by(player) {
            ctx.despawn(actor);
        }
    }

    fn on_message(
        &self,
        line: &mut WorldLine,
        ctx: &mut Ctx<'_, WorldPlayer>,
        player: PlayerId,
        message: MessageId,
        values: &[Value],
    ) {
        if message == line.ids.say {
            self.chat(line, ctx, player, values);
        } else if message == line.ids.switch_line {
            let [Value::Int(number)] = values else {
                return;
            };
            line.asked.insert(player, Asked::Line);
            let _ = ctx.change_line(player, *number as u32);
        } else if message == line.ids.travel {
            let [Value::Str(zone)] = values else {
                return;
            };
            line.asked.insert(player, Asked::Travel);
            let here = ctx.zone_name().to_owned();
            if **zone == *here {
                refuse(
                    ctx,
                    line,
                    player,
                    Asked::Travel,
                    format!("you are already in {here}"),
                );
            } else if ctx.travel(player, zone, None).is_err() {
                let names: Vec<&str> = self.zones.iter().map(|z| z.name()).collect();
                let reason = format!(
                    "there is no zone {:?} (zones: {})",
                    bounded(zone.to_string(), MAX_ZONE_NAME),
                    names.join(", ")
                );
                refuse(ctx, line, player, Asked::Travel, reason);
            }
        }
    }

    fn on_refused(
        &self,
        line: &mut WorldLine,
        ctx: &mut Ctx<'_, WorldPlayer>,
        player: PlayerId,
        refused: &Refused,
    ) {
        match refused {
            Refused::Transfer(reason) => {
                let about = line.asked.get(&player).copied().unwrap_or(Asked::Travel);
                refuse(ctx, line, player, about, reason.clone());
            }
            Refused::NotOnline(name) => {
                let reason = format!("{name} is not online: whispers reach online players only");
                let _ = ctx.send(
                    player,
                    line.ids.refused,
                    &[
                        Value::Int(0),
                        Value::Str(bounded(reason, MAX_REASON).into()),
                    ],
                );
            }
        }
    }

    fn on_announce(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>, text: &str) {
        let item = [
            Value::Int(ChatScope::System as i64),
            Value::Str("".into()),
            Value::Str("".into()),
            Value::Str(bounded(text.to_owned(), MAX_CHAT).into()),
        ];
        let _ = ctx.send_to_line(line.ids.chat, &item);
    }

    fn on_walk_end(
        &self,
        _: &mut WorldLine,
        ctx: &mut Ctx<'_, WorldPlayer>,
        actor: ActorId,
        _arrived: bool,
    ) {
        rest(ctx, actor);
    }

    /// An NPC's rest is over (the timer's tag is its actor's id): it sets
    /// out for somewhere near home, or rests again if a wall is in the way.
    fn on_timer(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>, _: TimerId, tag: u64) {
        let npc = ActorId(tag as u32);
        let Some(home) = npc
            .0
            .checked_sub(line.first_npc)
            .and_then(|offset| line.homes.get(offset as usize))
            .copied()
        else {
            return;
        };
        let Some(at) = ctx.position(npc) else {
            return;
        };
        let reach = WANDER_CELLS * i64::from(UNITS_PER_CELL);
        let target = Pos::new(
            home.x + ctx.rng().range(-reach, reach) as i32,
            home.y + ctx.rng().range(-reach, reach) as i32,
        );
        let Some(zone) = ctx.zone() else {
            return;
        };
        let clear = zone.path_clear(at, target);
        // NPCs stroll at half their zone's walking speed.
        let stroll = zone.spec.speed * UNITS_PER_CELL as u32 / 2;
        if !(clear && ctx.walk_to_at(npc, target, stroll).is_ok()) {
            rest(ctx, npc);
        }
    }

    fn on_tick(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>) {
        self.take_portals(line, ctx);
    }
}

/// Tells `player` the host or the game refused what they asked.
fn refuse(
    ctx: &mut Ctx<'_, WorldPlayer>,
    line: &WorldLine,
    player: PlayerId,
    about: Asked,
    reason: String,
) {
    let _ = ctx.send(
        player,
        line.ids.refused,
        &[
            Value::Int(about as i64),
            Value::Str(bounded(reason, MAX_REASON).into()),
        ],
    );
}

/// Brings the player's data up to date with where they are (saved by
/// Hearth when it changed).
fn record(ctx: &mut Ctx<'_, WorldPlayer>, player: PlayerId) {
    let zone = ctx.zone_name().to_owned();
    let zone = zone.as_str();
    let Some(at) = ctx.controlled_by(player).and_then(|a| ctx.position(a)) else {
        return;
    };
    let unchanged = ctx
        .player_data(player)
        .is_some_and(|d| d.at == Some(at) && d.zone.as_deref() == Some(zone));
    if unchanged {
        return;
    }
    if let Some(data) = ctx.player_data_mut(player) {
        data.zone = Some(zone.to_owned());
        data.at = Some(at);
    }
}

impl WorldGame {
    /// Players who stepped onto a portal's cell travel where it leads.
    fn take_portals(&self, line: &mut WorldLine, ctx: &mut Ctx<'_, WorldPlayer>) {
        let Some(zone) = ctx.zone().filter(|z| !z.spec.portals.is_empty()).cloned() else {
            return;
        };
        let players: Vec<PlayerId> = ctx.players().collect();
        for player in players {
            let at = ctx.controlled_by(player).and_then(|a| ctx.position(a));
            let Some(portal) = at.and_then(|at| zone.portal_at(at)) else {
                line.on_portal.remove(&player);
                continue;
            };
            if !line.on_portal.insert(player) {
                continue;
            }
            let arrive = Pos::cell_centre(portal.arrive[0], portal.arrive[1]);
            line.asked.insert(player, Asked::Travel);
            let _ = ctx.travel(player, &portal.to, Some(arrive));
        }
    }

    fn chat(
        &self,
        line: &WorldLine,
        ctx: &mut Ctx<'_, WorldPlayer>,
        player: PlayerId,
        values: &[Value],
    ) {
        let [Value::Int(scope), Value::Str(to), Value::Str(text)] = values else {
            return;
        };
        let scope = match scope {
            0 => ChatScope::Zone,
            1 => ChatScope::Line,
            _ => ChatScope::Whisper,
        };
        let name = ctx.name(player).unwrap_or("").to_owned();
        let checked = check_text(text).map(str::to_owned).map_err(str::to_owned);
        let checked = checked.and_then(|text| {
            if scope == ChatScope::Whisper && to.is_empty() {
                return Err("name the player to whisper to".to_owned());
            }
            match self.hook.as_ref().map(|h| h.check(&name, scope, &text)) {
                None | Some(ChatVerdict::Allow) => Ok(text),
                Some(ChatVerdict::Replace(text)) => Ok(bounded(text, MAX_CHAT)),
                Some(ChatVerdict::Refuse(why)) => Err(bounded(why, MAX_REASON)),
            }
        });
        let text = match checked {
            Ok(text) => text,
            Err(reason) => {
                let _ = ctx.send(
                    player,
                    line.ids.refused,
                    &[Value::Int(0), Value::Str(reason.into())],
                );
                return;
            }
        };
        let to: Arc<str> = match scope {
            ChatScope::Whisper => to.clone(),
            _ => "".into(),
        };
        let item = [
            Value::Int(scope as i64),
            Value::Str(bounded(name, MAX_ACTOR_NAME).into()),
            Value::Str(to.clone()),
            Value::Str(text.into()),
        ];
        let sent = match scope {
            ChatScope::Line => ctx.send_to_line(line.ids.chat, &item),
            ChatScope::Zone => ctx.send_to_zone(line.ids.chat, &item),
            // Anywhere in the game; the sender sees what they whispered
            // (and hears in `on_refused` if nobody has that name).
            _ => ctx
                .send_to_named(player, &to, line.ids.chat, &item)
                .and_then(|_| {
                    if ctx.player_named(&to) != Some(player) {
                        ctx.send(player, line.ids.chat, &item)?;
                    }
                    Ok(())
                }),
        };
        if let Err(error) = sent {
            let reason = bounded(error.to_string(), MAX_REASON);
            let _ = ctx.send(
                player,
                line.ids.refused,
                &[Value::Int(0), Value::Str(reason.into())],
            );
        }
    }
}
