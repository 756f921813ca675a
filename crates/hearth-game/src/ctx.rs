//! [`Ctx`]: everything a game may do from inside a callback.

use hearth_replica::game_wire::put_message;
use hearth_replica::geometry::Pos;
use hearth_replica::schema::{Direction, Schema, Value, ValueError};
use hearth_replica::zone::Zone;

use crate::ids::{ActorId, KindId, MessageId, PlayerId, PropId, TimerId};
use crate::line::Transfer;
use crate::movement::{self, Space, OPENING_ALLOWANCE_TICKS};
use crate::rng::Rng;
use crate::state::{ActorState, Core};

/// Messages one player may have queued in one tick; beyond, the game's
/// sends are dropped and counted (`GameStats::messages_out_dropped`).
pub const MAX_OUTBOX_ITEMS: u32 = 256;
/// The same in bytes.
pub const MAX_OUTBOX_BYTES: usize = 64 * 1024;
/// Messages for the whole zone one line may send in one tick; beyond, they
/// are dropped and counted.
pub const MAX_ZONE_MESSAGES: usize = 64;

/// A game's mistake, reported to it (nothing is changed or sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameError {
    #[error("actor {0:?} does not exist (despawned?)")]
    UnknownActor(ActorId),
    #[error("actor {actor:?} is a {kind}, which has no such property")]
    WrongKind { actor: ActorId, kind: String },
    #[error("player {0} is not in this line")]
    UnknownPlayer(PlayerId),
    #[error("{0} is a message to the server: the server cannot send it")]
    NotToClient(String),
    #[error("actor {0:?} is of a kind that does not move (make its kind with KindSpec::moving)")]
    NotMoving(ActorId),
    #[error("{0:?} is outside the zone")]
    OutOfBounds(Pos),
    #[error("actor {0:?} is steered by a player: take control away first (Ctx::control)")]
    Controlled(ActorId),
    #[error("there is no zone {0:?} (the zones are Game::zones)")]
    UnknownZone(String),
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// The line as a game sees it during a callback.
pub struct Ctx<'a, P> {
    pub(crate) core: &'a mut Core<P>,
    pub(crate) schema: &'a Schema,
    pub(crate) space: &'a Space,
}

impl<P> Ctx<'_, P> {
    /// The line's tick (the first tick is 1; `new_line` runs at 0).
    pub fn tick(&self) -> u64 {
        self.core.tick
    }

    pub fn tick_hz(&self) -> u32 {
        self.core.tick_hz
    }

    /// The line's seeded random source: the only randomness a game should
    /// use, so that a line restored from a snapshot draws the same numbers.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.core.rng
    }

    pub fn schema(&self) -> &Schema {
        self.schema
    }

    /// The kind named `name`.
    pub fn kind(&self, name: &str) -> Option<KindId> {
        self.schema.kind(name).map(|(index, _)| KindId(index))
    }

    /// The property `name` of `kind`.
    pub fn prop(&self, kind: KindId, name: &str) -> Option<PropId> {
        let index = self.schema.kinds()[usize::from(kind.0)].prop_index(name)?;
        Some(PropId {
            kind: kind.0,
            index: index as u8,
        })
    }

    /// The message named `name`.
    pub fn message(&self, name: &str) -> Option<MessageId> {
        self.schema.message(name).map(|(index, _)| MessageId(index))
    }

    /// The players in the line, in id order.
    pub fn players(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.core.players.keys().copied()
    }

    /// The player's name, as they logged in.
    pub fn name(&self, player: PlayerId) -> Option<&str> {
        self.core.players.get(&player).map(|p| p.name.as_str())
    }

    /// The player of this line with this name, compared as accounts'
    /// names are (`names::same_name`: "ASA" finds "asa").
    pub fn player_named(&self, name: &str) -> Option<PlayerId> {
        self.core
            .players
            .iter()
            .find(|(_, p)| hearth_replica::names::same_name(&p.name, name))
            .map(|(id, _)| *id)
    }

    pub fn is_present(&self, player: PlayerId) -> bool {
        self.core.players.contains_key(&player)
    }

    /// A new actor of `kind`, every property at its type's default;
    /// `owner` sees its owner-only properties.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, PlayerId};
    /// # use hearth_game::schema::{KindSpec, PropSpec, Schema, ValueType};
    /// # struct Coins;
    /// # impl Game for Coins {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let purse = KindSpec::new("purse")
    /// #             .prop(PropSpec::new("coins", ValueType::int(0, 99)).owner_only());
    /// #         Schema::new("coins", vec![purse], vec![]).unwrap()
    /// #     }
    /// #     fn new_line(&self, _: &mut Ctx<'_, ()>) {}
    /// fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: PlayerId) {
    ///     // A purse for the newcomer: they alone are sent its owner-only coins.
    ///     let purse = ctx.kind("purse").unwrap();
    ///     let actor = ctx.spawn(purse, Some(player));
    ///     assert_eq!(ctx.owner(actor), Some(player));
    ///     assert_eq!(ctx.actors_of(purse).count(), ctx.players().count());
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Coins), 1);
    /// # line.join(7, None);
    /// # line.join(8, None);
    /// # line.tick();
    /// # assert_eq!(line.in_view(7), Some(2));
    /// ```
    pub fn spawn(&mut self, kind: KindId, owner: Option<PlayerId>) -> ActorId {
        let spec = &self.schema.kinds()[usize::from(kind.0)];
        let id = ActorId(self.core.next_actor);
        self.core.next_actor += 1;
        let tick = self.core.tick;
        self.core.actors.insert(
            id,
            ActorState {
                kind: kind.0,
                owner,
                controller: None,
                values: spec.props.iter().map(|p| p.ty.default_value()).collect(),
                changed: vec![tick; spec.props.len()],
                frame_changed: tick,
                reliable_changed: tick,
                walk_to: None,
                walk_step: 0,
            },
        );
        id
    }

    /// Removes the actor; false if it did not exist. A player who
    /// controlled it controls nothing.
    pub fn despawn(&mut self, actor: ActorId) -> bool {
        let Some(state) = self.core.actors.remove(&actor) else {
            return false;
        };
        if let Some(player) = state.controller.and_then(|p| self.core.players.get_mut(&p)) {
            player.steer.actor = None;
            player.steer.announce = true;
        }
        true
    }

    pub fn exists(&self, actor: ActorId) -> bool {
        self.core.actors.contains_key(&actor)
    }

    /// The actor's kind.
    pub fn kind_of(&self, actor: ActorId) -> Option<KindId> {
        self.core.actors.get(&actor).map(|a| KindId(a.kind))
    }

    pub fn owner(&self, actor: ActorId) -> Option<PlayerId> {
        self.core.actors.get(&actor)?.owner
    }

    /// The actors of `kind`, in id order.
    pub fn actors_of(&self, kind: KindId) -> impl Iterator<Item = ActorId> + '_ {
        self.core
            .actors
            .iter()
            .filter(move |(_, a)| a.kind == kind.0)
            .map(|(id, _)| *id)
    }

    /// Sets a property, checked against its type; unchanged values cost
    /// nothing on the wire.
    ///
    /// ```
    /// # use hearth_game::{ActorId, Ctx, Game, GameLine};
    /// # use hearth_game::schema::{KindSpec, PropSpec, Schema, Value, ValueType};
    /// # struct Board;
    /// # impl Game for Board {
    /// #     type Line = ActorId;
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let board = KindSpec::new("board")
    /// #             .prop(PropSpec::new("title", ValueType::string(16)).reliable())
    /// #             .prop(PropSpec::new("score", ValueType::int(0, 100)).reliable());
    /// #         Schema::new("board", vec![board], vec![]).unwrap()
    /// #     }
    /// fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> ActorId {
    ///     let board = ctx.kind("board").unwrap();
    ///     let title = ctx.prop(board, "title").unwrap();
    ///     let score = ctx.prop(board, "score").unwrap();
    ///     let actor = ctx.spawn(board, None);
    ///     ctx.set(actor, title, Value::Str("High scores".into())).unwrap();
    ///     ctx.set_int(actor, score, 42).unwrap();
    ///     // Checked against the property's type: nothing changes.
    ///     assert!(ctx.set_int(actor, score, 101).is_err());
    ///     assert!(ctx.set(actor, score, Value::Bool(true)).is_err());
    ///     assert_eq!(ctx.get_int(actor, score), Some(42));
    ///     actor
    /// }
    /// # }
    /// # GameLine::new(std::sync::Arc::new(Board), 1);
    /// ```
    pub fn set(&mut self, actor: ActorId, prop: PropId, value: Value) -> Result<(), GameError> {
        self.actor_of_kind(actor, prop)?;
        let schema = self.schema;
        let kind = &schema.kinds()[usize::from(prop.kind)];
        let spec = &kind.props[usize::from(prop.index)];
        if !spec.ty.admits(&value) {
            return Err(ValueError::Type {
                at: format!("{}.{}", kind.name, spec.name),
                value,
            }
            .into());
        }
        let index = usize::from(prop.index);
        let tick = self.core.tick;
        let state = self.core.actors.get_mut(&actor).expect("checked above");
        if kind.movement.is_some() && index < 2 && state.values[index] != value {
            // The game moved a controlled actor: its client is corrected.
            if let Some(player) = state.controller.and_then(|p| self.core.players.get_mut(&p)) {
                player.steer.corrected = true;
            }
        }
        if state.values[index] != value {
            state.values[index] = value;
            state.changed[index] = tick;
            match spec.delivery {
                hearth_replica::schema::Delivery::Frame => state.frame_changed = tick,
                hearth_replica::schema::Delivery::Reliable => state.reliable_changed = tick,
            }
        }
        Ok(())
    }

    pub fn set_int(&mut self, actor: ActorId, prop: PropId, value: i64) -> Result<(), GameError> {
        self.set(actor, prop, Value::Int(value))
    }

    pub fn set_bool(&mut self, actor: ActorId, prop: PropId, value: bool) -> Result<(), GameError> {
        self.set(actor, prop, Value::Bool(value))
    }

    /// A property's value; `None` if the actor is gone or of another kind.
    ///
    /// ```
    /// # use hearth_game::{ActorId, Ctx, Game, GameLine};
    /// # use hearth_game::schema::{KindSpec, PropSpec, Schema, Value, ValueType};
    /// # struct Clock;
    /// # impl Game for Clock {
    /// #     type Line = ActorId;
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let clock = KindSpec::new("clock")
    /// #             .prop(PropSpec::new("seconds", ValueType::int(0, 1_000_000)).reliable());
    /// #         Schema::new("clock", vec![clock], vec![]).unwrap()
    /// #     }
    /// #     fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> ActorId {
    /// #         ctx.spawn(ctx.kind("clock").unwrap(), None)
    /// #     }
    /// fn on_tick(&self, clock: &mut ActorId, ctx: &mut Ctx<'_, ()>) {
    ///     if ctx.tick() % u64::from(ctx.tick_hz()) == 0 {
    ///         let seconds = ctx.prop(ctx.kind("clock").unwrap(), "seconds").unwrap();
    ///         let Some(Value::Int(now)) = ctx.get(*clock, seconds) else { return };
    ///         ctx.set_int(*clock, seconds, now + 1).unwrap();
    ///     }
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Clock), 1);
    /// # for _ in 0..60 { line.tick(); }
    /// # // Three seconds at 20 ticks a second; read back through a client:
    /// # let mut replica = hearth_replica::game_replica::GameReplica::new(line.schema().clone());
    /// # line.join(1, None);
    /// # line.tick();
    /// # for output in line.drain_outputs() {
    /// #     if let hearth_game::GameOutput::Send { channel: 10, bytes, .. } = output {
    /// #         replica.apply_reliable(&bytes).unwrap();
    /// #     }
    /// # }
    /// # let (id, _) = replica.actors().next().unwrap();
    /// # assert_eq!(replica.value(id, "seconds"), Some(&Value::Int(3)));
    /// ```
    pub fn get(&self, actor: ActorId, prop: PropId) -> Option<&Value> {
        let state = self.core.actors.get(&actor)?;
        (state.kind == prop.kind).then(|| &state.values[usize::from(prop.index)])
    }

    /// An integer, fixed-point or enum property's raw value.
    pub fn get_int(&self, actor: ActorId, prop: PropId) -> Option<i64> {
        match self.get(actor, prop)? {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn get_bool(&self, actor: ActorId, prop: PropId) -> Option<bool> {
        match self.get(actor, prop)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn actor_of_kind(&self, actor: ActorId, prop: PropId) -> Result<&ActorState, GameError> {
        let state = self
            .core
            .actors
            .get(&actor)
            .ok_or(GameError::UnknownActor(actor))?;
        if state.kind != prop.kind {
            return Err(GameError::WrongKind {
                actor,
                kind: self.schema.kinds()[usize::from(state.kind)].name.clone(),
            });
        }
        Ok(state)
    }

    /// Sends a `to_client` message to one player.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, GameOutput, PlayerId};
    /// # use hearth_game::schema::{MessageSpec, Schema, Value, ValueType};
    /// # use hearth_replica::game_replica::{GameEvent, GameReplica};
    /// # struct Greeter;
    /// # impl Game for Greeter {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let welcome = MessageSpec::to_client("welcome").field("name", ValueType::string(32));
    /// #         Schema::new("greeter", vec![], vec![welcome]).unwrap()
    /// #     }
    /// #     fn new_line(&self, _: &mut Ctx<'_, ()>) {}
    /// fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: PlayerId) {
    ///     let welcome = ctx.message("welcome").unwrap();
    ///     let name = ctx.name(player).unwrap_or("").to_owned();
    ///     // Checked against the message's fields, then queued for the tick.
    ///     ctx.send(player, welcome, &[Value::Str(name.into())]).unwrap();
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Greeter), 1);
    /// # let mut ann = GameReplica::new(line.schema().clone());
    /// # line.join_as(7, "ann", None);
    /// # line.tick();
    /// # for output in line.drain_outputs() {
    /// #     if let GameOutput::Send { player: 7, channel: 10, bytes } = output {
    /// #         ann.apply_reliable(&bytes).unwrap();
    /// #     }
    /// # }
    /// # let events: Vec<GameEvent> = std::iter::from_fn(|| ann.poll_event()).collect();
    /// # assert!(events.contains(&GameEvent::Message { index: 0, values: vec![Value::Str("ann".into())] }));
    /// ```
    pub fn send(
        &mut self,
        to: PlayerId,
        message: MessageId,
        values: &[Value],
    ) -> Result<(), GameError> {
        if !self.core.players.contains_key(&to) {
            return Err(GameError::UnknownPlayer(to));
        }
        let body = self.encode(message, values)?;
        self.queue(to, message, &body);
        Ok(())
    }

    /// Sends to every player who sees `actor`: everyone in the line for an
    /// actor that does not move; for a moving one, the players whose own
    /// actor is within the view radius, its controller, and the players
    /// who control nothing (they see the whole line).
    pub fn send_to_viewers(
        &mut self,
        actor: ActorId,
        message: MessageId,
        values: &[Value],
    ) -> Result<(), GameError> {
        let state = self
            .core
            .actors
            .get(&actor)
            .ok_or(GameError::UnknownActor(actor))?;
        if !self.space.moves(state.kind) {
            return self.send_to_line(message, values);
        }
        let body = self.encode(message, values)?;
        let at = movement::position(state);
        let radius2 = self.space.view_in * self.space.view_in;
        let viewers: Vec<PlayerId> = self
            .core
            .players
            .iter()
            .filter(|(_, p)| {
                p.steer.actor == Some(actor)
                    || match movement::view_centre(&self.core.actors, self.space, p.steer.actor) {
                        Some(centre) => centre.distance_squared(at) <= radius2,
                        None => true,
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        for player in viewers {
            self.queue(player, message, &body);
        }
        // Observers see the whole line.
        self.queue_observers(message, &body);
        Ok(())
    }

    /// Sends to every player of the line.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, GameOutput, MessageId, PlayerId};
    /// # use hearth_game::schema::{MessageSpec, Schema, Value, ValueType};
    /// # use hearth_replica::game_replica::GameReplica;
    /// # struct Chat;
    /// # impl Game for Chat {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let say = MessageSpec::to_server("say").field("text", ValueType::string(100));
    /// #         let said = MessageSpec::to_client("said")
    /// #             .field("by", ValueType::string(32))
    /// #             .field("text", ValueType::string(100));
    /// #         Schema::new("chat", vec![], vec![say, said]).unwrap()
    /// #     }
    /// #     fn new_line(&self, _: &mut Ctx<'_, ()>) {}
    /// fn on_message(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: PlayerId,
    ///               message: MessageId, values: &[Value]) {
    ///     if Some(message) == ctx.message("say") {
    ///         let by = Value::Str(ctx.name(player).unwrap_or("").into());
    ///         let said = ctx.message("said").unwrap();
    ///         // Everyone in the line, the sender too.
    ///         ctx.send_to_line(said, &[by, values[0].clone()]).unwrap();
    ///     }
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Chat), 1);
    /// # line.join_as(1, "ann", None);
    /// # line.join_as(2, "ben", None);
    /// # line.tick();
    /// # line.drain_outputs().count();
    /// # let client = GameReplica::new(line.schema().clone());
    /// # let hi = client.message("say", vec![Value::Str("hi".into())]).unwrap();
    /// # line.input(1, 10, &hi).unwrap();
    /// # line.tick();
    /// # let told: Vec<_> = line.drain_outputs().filter_map(|o| match o {
    /// #     GameOutput::Send { player, channel: 10, .. } => Some(player),
    /// #     _ => None,
    /// # }).collect();
    /// # assert_eq!(told, [1, 2]);
    /// ```
    pub fn send_to_line(&mut self, message: MessageId, values: &[Value]) -> Result<(), GameError> {
        let body = self.encode(message, values)?;
        let players: Vec<PlayerId> = self.core.players.keys().copied().collect();
        for player in players {
            self.queue(player, message, &body);
        }
        self.queue_observers(message, &body);
        Ok(())
    }

    /// Sends a message to the player with this name (compared as
    /// accounts' names are), wherever they are in the game: at once if in
    /// this line, else through the host. `Ok(false)`: not in this line, so
    /// the host looks further, and if the player is not online the game
    /// hears of it in [`crate::Game::on_refused`] (`Refused::NotOnline`).
    /// Bounded per tick like zone messages.
    pub fn send_to_named(
        &mut self,
        from: PlayerId,
        name: &str,
        message: MessageId,
        values: &[Value],
    ) -> Result<bool, GameError> {
        if let Some(to) = self.player_named(name) {
            self.send(to, message, values)?;
            return Ok(true);
        }
        let body = self.encode(message, values)?;
        if self.core.to_named.len() >= MAX_ZONE_MESSAGES {
            self.core.stats.messages_out_dropped += 1;
            return Ok(false);
        }
        let name: String = name.chars().take(64).collect();
        self.core.to_named.push((from, name, message.0, body));
        Ok(false)
    }

    /// Sends to every player of every line of the zone (this line's at
    /// once, the others' through the host).
    pub fn send_to_zone(&mut self, message: MessageId, values: &[Value]) -> Result<(), GameError> {
        self.send_to_line(message, values)?;
        if self.core.to_zone.len() >= MAX_ZONE_MESSAGES {
            // Every other line would queue it for every player: bounded
            // per tick like a player's queue.
            self.core.stats.messages_out_dropped += 1;
            return Ok(());
        }
        let body = self.encode(message, values)?;
        self.core.to_zone.push((message.0, body));
        Ok(())
    }

    fn encode(&self, message: MessageId, values: &[Value]) -> Result<Vec<u8>, GameError> {
        let spec = &self.schema.messages()[usize::from(message.0)];
        if spec.direction != Direction::ToClient {
            return Err(GameError::NotToClient(spec.name.clone()));
        }
        let mut body = Vec::new();
        spec.encode(values, &mut body)?;
        Ok(body)
    }

    /// Queues a message for the line's observers (recordings), under the
    /// same limits as a player's.
    pub(crate) fn queue_observers(&mut self, message: MessageId, body: &[u8]) {
        for observer in self.core.observers.values_mut() {
            if observer.outbox_items >= MAX_OUTBOX_ITEMS
                || observer.outbox.len() + body.len() > MAX_OUTBOX_BYTES
            {
                continue;
            }
            put_message(&mut observer.outbox, message.0, body);
            observer.outbox_items += 1;
        }
    }

    pub(crate) fn queue(&mut self, to: PlayerId, message: MessageId, body: &[u8]) {
        let Some(player) = self.core.players.get_mut(&to) else {
            return;
        };
        if player.outbox_items >= MAX_OUTBOX_ITEMS
            || player.outbox.len() + body.len() > MAX_OUTBOX_BYTES
        {
            self.core.stats.messages_out_dropped += 1;
            return;
        }
        put_message(&mut player.outbox, message.0, body);
        player.outbox_items += 1;
    }

    /// Calls [`crate::Game::on_timer`] with `tag` after `ticks` ticks (at
    /// least one). Timers are part of the line's snapshot.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, TimerId};
    /// # use hearth_game::schema::Schema;
    /// # use serde::{Deserialize, Serialize};
    /// # struct Rounds;
    /// #[derive(Serialize, Deserialize)]
    /// struct Round {
    ///     timer: TimerId,
    ///     over: bool,
    /// }
    /// const ROUND_OVER: u64 = 1;
    /// # impl Game for Rounds {
    /// #     type Line = Round;
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema { Schema::new("rounds", vec![], vec![]).unwrap() }
    ///
    /// fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> Round {
    ///     // A minute, in ticks.
    ///     let timer = ctx.after(60 * ctx.tick_hz(), ROUND_OVER);
    ///     Round { timer, over: false }
    /// }
    ///
    /// fn on_timer(&self, round: &mut Round, _: &mut Ctx<'_, ()>, timer: TimerId, tag: u64) {
    ///     if tag == ROUND_OVER && timer == round.timer {
    ///         round.over = true;
    ///     }
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Rounds), 1);
    /// # for _ in 0..60 * 20 - 1 { line.tick(); }
    /// # assert!(!line.state().over);
    /// # line.tick();
    /// # assert!(line.state().over);
    /// ```
    pub fn after(&mut self, ticks: u32, tag: u64) -> TimerId {
        let id = self.core.next_timer;
        self.core.next_timer += 1;
        let due = self.core.tick + u64::from(ticks.max(1));
        self.core.timers.insert((due, id));
        self.core.timer_tags.insert(id, (due, tag));
        TimerId(id)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        match self.core.timer_tags.remove(&timer.0) {
            Some((due, _)) => self.core.timers.remove(&(due, timer.0)),
            None => false,
        }
    }

    /// The player's saved data.
    pub fn player_data(&self, player: PlayerId) -> Option<&P> {
        self.core.players.get(&player).map(|p| &p.data)
    }

    /// The player's saved data, to change: it is saved again (on leave, or
    /// within the save period).
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, GameOutput, PlayerId};
    /// # use hearth_game::schema::Schema;
    /// # use serde::{Deserialize, Serialize};
    /// # struct Inn;
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Guest {
    ///     visits: u32,
    /// }
    /// # impl Game for Inn {
    /// #     type Line = ();
    /// #     type Player = Guest;
    /// #     fn schema(&self) -> Schema { Schema::new("inn", vec![], vec![]).unwrap() }
    /// #     fn new_line(&self, _: &mut Ctx<'_, Guest>) {}
    ///
    /// fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, Guest>, player: PlayerId) {
    ///     // Loaded before on_join (the type's default for a newcomer).
    ///     if let Some(guest) = ctx.player_data_mut(player) {
    ///         guest.visits += 1;
    ///     }
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Inn), 1);
    /// # line.join(7, Some(br#"{"visits":2}"#.to_vec()));
    /// # line.tick();
    /// # line.leave(7);
    /// # line.tick();
    /// # let saved = line.drain_outputs().find_map(|o| match o {
    /// #     GameOutput::Left { player: 7, data, .. } => Some(data),
    /// #     _ => None,
    /// # }).unwrap();
    /// # let guest: Guest = serde_json::from_slice(&saved).unwrap();
    /// # assert_eq!(guest.visits, 3);
    /// ```
    pub fn player_data_mut(&mut self, player: PlayerId) -> Option<&mut P> {
        let state = self.core.players.get_mut(&player)?;
        state.dirty = true;
        Some(&mut state.data)
    }

    /// The zone the line plays in (from [`crate::Game::zones`]); `None`
    /// for a game without maps.
    pub fn zone(&self) -> Option<&Zone> {
        self.space.zone.as_ref()
    }

    /// The name of the line's zone (the game's name, for a game without
    /// maps).
    pub fn zone_name(&self) -> &str {
        &self.space.zone_names[usize::from(self.space.zone_index)]
    }

    /// Where the player was to appear when they entered this line: the
    /// `at` of the [`Ctx::travel`] that brought them (the host checks
    /// nothing about it: the game places the player, and should check
    /// that the spot is on the map).
    pub fn arrival(&self, player: PlayerId) -> Option<Pos> {
        self.core.players.get(&player)?.arrival
    }

    /// Asks the host to move `player` to another zone, appearing at `at`
    /// ([`Ctx::arrival`] there): a portal, a quest's teleport. The host
    /// may refuse (the player changed place a moment ago): the game hears
    /// of it in [`crate::Game::on_refused`]. If it agrees, the player
    /// leaves this line ([`crate::Game::on_leave`], their data saved) and
    /// enters a line of that zone ([`crate::Game::on_join`]). The last ask
    /// of a tick for a player is the one the host gets.
    pub fn travel(
        &mut self,
        player: PlayerId,
        zone: &str,
        at: Option<Pos>,
    ) -> Result<(), GameError> {
        if !self.core.players.contains_key(&player) {
            return Err(GameError::UnknownPlayer(player));
        }
        let index = self
            .space
            .zone_names
            .iter()
            .position(|name| name == zone)
            .ok_or_else(|| GameError::UnknownZone(zone.chars().take(64).collect()))?;
        self.ask_transfer(
            player,
            Transfer::Zone {
                zone: index as u16,
                at,
            },
        );
        Ok(())
    }

    /// Asks the host to move `player` to line `number` of this zone (a
    /// player who wants to be with friends): refused, through
    /// [`crate::Game::on_refused`], when that line is not open or full, or
    /// the player changed place a moment ago.
    pub fn change_line(&mut self, player: PlayerId, number: u32) -> Result<(), GameError> {
        if !self.core.players.contains_key(&player) {
            return Err(GameError::UnknownPlayer(player));
        }
        self.ask_transfer(player, Transfer::Line(number));
        Ok(())
    }

    fn ask_transfer(&mut self, player: PlayerId, to: Transfer) {
        self.core.transfers.retain(|(p, _)| *p != player);
        self.core.transfers.push((player, to));
    }

    /// Where an actor of a moving kind is.
    pub fn position(&self, actor: ActorId) -> Option<Pos> {
        let state = self.core.actors.get(&actor)?;
        self.space
            .moves(state.kind)
            .then(|| movement::position(state))
    }

    /// Puts an actor of a moving kind at `pos` (a spawn point, a respawn, a
    /// teleport). If a player controls it, their client is corrected: it
    /// drops the moves it predicted and shows the actor at `pos`.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, PlayerId, Pos, Zone};
    /// # use hearth_game::schema::{KindSpec, Movement, Schema};
    /// # struct Field;
    /// # impl Game for Field {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let runner = KindSpec::moving("runner", Movement::new(5));
    /// #         Schema::new("field", vec![runner], vec![]).unwrap()
    /// #     }
    /// #     fn new_line(&self, _: &mut Ctx<'_, ()>) {}
    /// fn zones(&self) -> Vec<Zone> {
    ///     vec![Zone::open_field("field", 20, 20)]
    /// }
    ///
    /// fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: PlayerId) {
    ///     let runner = ctx.spawn(ctx.kind("runner").unwrap(), Some(player));
    ///     let spawn = ctx.zone().unwrap().spawns[0];
    ///     ctx.place(runner, spawn).unwrap();
    ///     assert_eq!(ctx.position(runner), Some(spawn));
    ///     // Off the map: refused, and the runner stays where it was.
    ///     assert!(ctx.place(runner, Pos::new(50_000, 100)).is_err());
    ///     assert_eq!(ctx.position(runner), Some(spawn));
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Field), 1);
    /// # line.join(7, None);
    /// # line.tick();
    /// ```
    pub fn place(&mut self, actor: ActorId, pos: Pos) -> Result<(), GameError> {
        let state = self
            .core
            .actors
            .get_mut(&actor)
            .ok_or(GameError::UnknownActor(actor))?;
        if !self.space.moves(state.kind) {
            return Err(GameError::NotMoving(actor));
        }
        if !self.space.in_bounds(pos) {
            return Err(GameError::OutOfBounds(pos));
        }
        if movement::position(state) != pos {
            movement::set_position(state, pos, self.core.tick);
            if let Some(player) = state.controller.and_then(|p| self.core.players.get_mut(&p)) {
                player.steer.corrected = true;
            }
        }
        Ok(())
    }

    /// Walks an actor of a moving kind to `target` at its kind's speed, a
    /// step each tick, turning it that way if its kind has a facing: for
    /// what the server moves (a monster, a merchant, a pet). A wall on the
    /// way stops the walk where it is (for kinds that walls stop); so does
    /// [`Ctx::stop`]. [`Ctx::is_walking`] tells whether it still goes.
    ///
    /// ```
    /// # use hearth_game::{ActorId, Ctx, Game, GameLine, Pos, Zone};
    /// # use hearth_game::schema::{KindSpec, Movement, Schema};
    /// struct Meadow;
    /// impl Game for Meadow {
    ///     type Line = ActorId;
    ///     type Player = ();
    ///     fn schema(&self) -> Schema {
    ///         // 2 cells a second: 10 hundredths of a cell per tick at 20 Hz.
    ///         let sheep = KindSpec::moving("sheep", Movement::new(2)).with_facing();
    ///         Schema::new("meadow", vec![sheep], vec![]).unwrap()
    ///     }
    ///     fn zones(&self) -> Vec<Zone> {
    ///         vec![Zone::open_field("meadow", 20, 20)]
    ///     }
    ///     fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> ActorId {
    ///         let sheep = ctx.spawn(ctx.kind("sheep").unwrap(), None);
    ///         ctx.place(sheep, Pos::new(500, 500)).unwrap();
    ///         ctx.walk_to(sheep, Pos::new(530, 500)).unwrap();
    ///         sheep
    ///     }
    /// }
    /// let mut line = GameLine::new(std::sync::Arc::new(Meadow), 1);
    /// line.tick();
    /// line.tick();
    /// line.tick();
    /// let sheep = *line.state();
    /// assert_eq!(line.position(sheep), Some(Pos::new(530, 500)));
    /// ```
    pub fn walk_to(&mut self, actor: ActorId, target: Pos) -> Result<(), GameError> {
        self.walk(actor, target, None)
    }

    /// [`Ctx::walk_to`] at `units_per_second` (hundredths of a cell a
    /// second, as positions count), at most the kind's speed in the zone: a
    /// merchant who strolls, a guard who runs.
    pub fn walk_to_at(
        &mut self,
        actor: ActorId,
        target: Pos,
        units_per_second: u32,
    ) -> Result<(), GameError> {
        self.walk(actor, target, Some(units_per_second))
    }

    fn walk(
        &mut self,
        actor: ActorId,
        target: Pos,
        units_per_second: Option<u32>,
    ) -> Result<(), GameError> {
        let state = self
            .core
            .actors
            .get_mut(&actor)
            .ok_or(GameError::UnknownActor(actor))?;
        if !self.space.moves(state.kind) {
            return Err(GameError::NotMoving(actor));
        }
        if state.controller.is_some() {
            return Err(GameError::Controlled(actor));
        }
        if !self.space.in_bounds(target) {
            return Err(GameError::OutOfBounds(target));
        }
        let at = movement::position(state);
        if at == target {
            // Already there: a walk that ends at once, told like any other.
            state.walk_to = None;
            self.core.walks_ended.push((actor, true));
            return Ok(());
        }
        if self.space.facing[usize::from(state.kind)] {
            movement::set_facing(state, at.facing_towards(target), self.core.tick);
        }
        // A tick's step: the kind's legal one, or the speed asked if slower.
        let legal = self.space.movement[usize::from(state.kind)]
            .map_or(1, |m| movement::step_per_tick(m, self.core.tick_hz));
        state.walk_step = units_per_second
            .map(|speed| (i64::from(speed) / i64::from(self.core.tick_hz.max(1))).clamp(1, legal))
            .filter(|step| *step < legal)
            .unwrap_or(0) as u32;
        state.walk_to = Some(target);
        self.core.walkers += 1;
        Ok(())
    }

    /// Whether the actor is on a walk of [`Ctx::walk_to`].
    pub fn is_walking(&self, actor: ActorId) -> bool {
        self.core
            .actors
            .get(&actor)
            .is_some_and(|a| a.walk_to.is_some())
    }

    /// Ends the actor's walk where it stands.
    pub fn stop(&mut self, actor: ActorId) {
        if let Some(state) = self.core.actors.get_mut(&actor) {
            state.walk_to = None;
        }
    }

    /// Gives `player` control of `actor` (of a moving kind): the player's
    /// client moves it, Hearth checks every move, and the player's view is
    /// centred on it (moving actors beyond the view radius are not sent).
    /// `None` takes control away; a player controls one actor at a time,
    /// and an actor has one controller.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, GameOutput, PlayerId, Zone};
    /// # use hearth_game::schema::{KindSpec, Movement, Schema};
    /// # use hearth_replica::game_replica::GameReplica;
    /// # struct Field;
    /// # impl Game for Field {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let runner = KindSpec::moving("runner", Movement::new(5));
    /// #         Schema::new("field", vec![runner], vec![]).unwrap()
    /// #     }
    /// #     fn zones(&self) -> Vec<Zone> { vec![Zone::open_field("field", 20, 20)] }
    /// #     fn new_line(&self, _: &mut Ctx<'_, ()>) {}
    /// fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: PlayerId) {
    ///     let runner = ctx.spawn(ctx.kind("runner").unwrap(), Some(player));
    ///     let spawn = ctx.zone().unwrap().spawns[0];
    ///     ctx.place(runner, spawn).unwrap();
    ///     // The player's client moves it from now on (Hearth checks each move).
    ///     ctx.control(player, Some(runner)).unwrap();
    ///     assert_eq!(ctx.controlled_by(player), Some(runner));
    /// }
    /// # }
    /// # let mut line = GameLine::new(std::sync::Arc::new(Field), 1);
    /// # let mut client = GameReplica::new(line.schema().clone());
    /// # line.join(7, None);
    /// # line.tick();
    /// # for output in line.drain_outputs() {
    /// #     if let GameOutput::Send { channel: 10, bytes, .. } = output {
    /// #         client.apply_reliable(&bytes).unwrap();
    /// #     }
    /// # }
    /// # let runner = client.controlled().expect("the client was told what it steers");
    /// # let at = client.position(runner).unwrap();
    /// # client.move_to(hearth_game::Pos::new(at.x + 20, at.y)).unwrap();
    /// ```
    pub fn control(&mut self, player: PlayerId, actor: Option<ActorId>) -> Result<(), GameError> {
        if !self.core.players.contains_key(&player) {
            return Err(GameError::UnknownPlayer(player));
        }
        if let Some(id) = actor {
            let state = self
                .core
                .actors
                .get(&id)
                .ok_or(GameError::UnknownActor(id))?;
            if !self.space.moves(state.kind) {
                return Err(GameError::NotMoving(id));
            }
        }
        let previous = self.core.players[&player].steer.actor;
        if previous == actor {
            return Ok(());
        }
        if let Some(old) = previous.and_then(|id| self.core.actors.get_mut(&id)) {
            old.controller = None;
        }
        if let Some(id) = actor {
            let state = self.core.actors.get_mut(&id).expect("checked above");
            // The player steers it now, not a walk.
            state.walk_to = None;
            // Its previous controller controls nothing now.
            if let Some(other) = state.controller.replace(player) {
                if let Some(other) = self.core.players.get_mut(&other) {
                    other.steer.actor = None;
                    other.steer.announce = true;
                }
            }
        }
        let opening = actor
            .and_then(|id| self.core.actors.get(&id))
            .and_then(|state| self.space.movement[usize::from(state.kind)])
            .map_or(0, |m| movement::step_per_tick(m, self.core.tick_hz));
        let steer = &mut self
            .core
            .players
            .get_mut(&player)
            .expect("checked above")
            .steer;
        steer.actor = actor;
        steer.announce = true;
        steer.moves.clear();
        steer.allowance = opening * OPENING_ALLOWANCE_TICKS;
        Ok(())
    }

    /// The actor `player` controls.
    pub fn controlled_by(&self, player: PlayerId) -> Option<ActorId> {
        self.core.players.get(&player)?.steer.actor
    }

    /// The moving actors within `radius` position units of `centre`
    /// (hundredths of a cell), nearest first, then by id.
    ///
    /// ```
    /// # use hearth_game::{ActorId, Ctx, Game, GameLine, Pos};
    /// # use hearth_game::schema::{KindSpec, Movement, Schema};
    /// # struct Field;
    /// # impl Game for Field {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let runner = KindSpec::moving("runner", Movement::new(5));
    /// #         Schema::new("field", vec![runner], vec![]).unwrap()
    /// #     }
    /// fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
    ///     let kind = ctx.kind("runner").unwrap();
    ///     let mut runner_at = |x, y| {
    ///         let runner = ctx.spawn(kind, None);
    ///         ctx.place(runner, Pos::new(x, y)).unwrap();
    ///         runner
    ///     };
    ///     let (far, near, nearer) = (runner_at(900, 500), runner_at(650, 500), runner_at(540, 500));
    ///     // Within a cell and a half of (500, 500): `far` is four cells away.
    ///     assert_eq!(ctx.near(Pos::new(500, 500), 150), [nearer, near]);
    ///     assert_eq!(ctx.near(Pos::new(500, 500), 400), [nearer, near, far]);
    /// }
    /// # }
    /// # GameLine::new(std::sync::Arc::new(Field), 1);
    /// ```
    pub fn near(&self, centre: Pos, radius: i64) -> Vec<ActorId> {
        let radius2 = radius.saturating_mul(radius);
        let mut found: Vec<(i64, ActorId)> = self
            .core
            .actors
            .iter()
            .filter(|(_, a)| self.space.moves(a.kind))
            .map(|(id, a)| (movement::position(a).distance_squared(centre), *id))
            .filter(|(d2, _)| *d2 <= radius2)
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// Ends the player's session; `reason` is shown to them.
    pub fn kick(&mut self, player: PlayerId, reason: &str) {
        self.core.kicks.push((player, reason.to_owned()));
    }
}

/// The masks of one kind, computed once per line from the schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindMasks {
    pub everyone: u64,
    pub owner: u64,
    pub frame: u64,
    pub reliable: u64,
    /// Each property's starting value.
    pub defaults: Vec<Value>,
    /// The indexes of its frame properties, when there are at most
    /// [`crate::replicate::HOT_FRAME_PROPS`] (replication then finds what
    /// changed without reading the actor's state).
    pub hot_frame: Option<[u64; crate::replicate::HOT_FRAME_PROPS]>,
}

pub(crate) fn kind_masks(schema: &Schema) -> Vec<KindMasks> {
    use hearth_replica::schema::{Delivery, Visibility};
    schema
        .kinds()
        .iter()
        .map(|kind| {
            let mut masks = KindMasks {
                defaults: kind.props.iter().map(|p| p.ty.default_value()).collect(),
                ..KindMasks::default()
            };
            for (index, prop) in kind.props.iter().enumerate() {
                let bit = 1u64 << index;
                match prop.visibility {
                    Visibility::Everyone => masks.everyone |= bit,
                    Visibility::Owner => masks.owner |= bit,
                    Visibility::Server => {}
                }
                match prop.delivery {
                    Delivery::Frame => masks.frame |= bit,
                    Delivery::Reliable => masks.reliable |= bit,
                }
            }
            let frame: Vec<u8> = (0..64u8).filter(|i| masks.frame & (1 << i) != 0).collect();
            // Each frame property's mask bit, in a fixed array (0: unused):
            // replication's loop over them has no bounds to check.
            masks.hot_frame = (frame.len() <= crate::replicate::HOT_FRAME_PROPS).then(|| {
                let mut bits = [0; crate::replicate::HOT_FRAME_PROPS];
                for (bit, index) in bits.iter_mut().zip(&frame) {
                    *bit = 1 << index;
                }
                bits
            });
            masks
        })
        .collect()
}
