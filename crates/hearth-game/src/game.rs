//! What a studio implements: the [`Game`] trait.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use hearth_replica::schema::{KindSpec, Movement, Schema, Value};
use hearth_replica::zone::Zone;

use crate::ctx::Ctx;
use crate::ids::{ActorId, MessageId, PlayerId, TimerId};

/// Who is logging in, for [`Game::pre_login`].
#[derive(Debug, Clone, Copy)]
pub struct LoginInfo<'a> {
    /// The account, or `None` for a guest (when the server allows them).
    pub account: Option<i64>,
    /// The name the player will have.
    pub name: &'a str,
    /// The URL options the client sent with its login (`?team=2`), as
    /// key and value pairs.
    pub options: &'a [(String, String)],
}

/// What the host could not do for a player ([`Game::on_refused`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refused {
    /// A change of line or zone ([`Ctx::change_line`], [`Ctx::travel`]),
    /// with the reason to show.
    Transfer(String),
    /// A message for the player named so ([`Ctx::send_to_named`]), who is
    /// not online.
    NotOnline(String),
}

/// The answer to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreLogin {
    Accept,
    /// Refused; the client is told `reason`.
    Refuse(String),
}

/// A game: its schema, and the logic of one line (a match, a table, a
/// room), called by Hearth as the line is stepped. Every callback runs
/// inside a tick, with no clock and no I/O: what the game may do is what
/// [`Ctx`] offers (actors and their properties, messages, timers, the
/// line's seeded random source, players' saved data). So a whole match
/// runs in a unit test, and a line restored from its snapshot behaves
/// exactly as the original would have.
///
/// ```
/// use hearth_game::{Ctx, Game, GameLine, PlayerId};
/// use hearth_replica::schema::{KindSpec, PropSpec, Schema, ValueType};
/// use serde::{Deserialize, Serialize};
///
/// /// Counts the players in the room on one replicated counter.
/// struct Lobby;
///
/// #[derive(Serialize, Deserialize)]
/// struct Room {
///     board: hearth_game::ActorId,
/// }
///
/// impl Game for Lobby {
///     type Line = Room;
///     type Player = ();
///
///     fn schema(&self) -> Schema {
///         let board = KindSpec::new("board")
///             
///             .prop(PropSpec::new("present", ValueType::int(0, 1000)).reliable());
///         Schema::new("lobby", vec![board], vec![]).unwrap()
///     }
///
///     fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> Room {
///         let kind = ctx.kind("board").unwrap();
///         Room { board: ctx.spawn(kind, None) }
///     }
///
///     fn on_join(&self, room: &mut Room, ctx: &mut Ctx<'_, ()>, _: PlayerId) {
///         let present = ctx.prop(ctx.kind("board").unwrap(), "present").unwrap();
///         let count = ctx.players().count() as i64;
///         ctx.set_int(room.board, present, count).unwrap();
///     }
/// }
///
/// let mut line = GameLine::new(std::sync::Arc::new(Lobby), 1);
/// line.join(7, None);
/// line.tick();
/// assert!(line.drain_outputs().next().is_some(), "player 7 was sent the board");
/// ```
pub trait Game: Send + Sync + 'static {
    /// The game's own state of one line. It is part of the line's
    /// snapshot: keep everything the game remembers here (or in actors'
    /// server-only properties), nothing in `self`.
    type Line: Serialize + DeserializeOwned + Send;
    /// What Hearth keeps for each player between sessions (a best score,
    /// unlocked items): loaded on join, saved on leave and periodically
    /// when changed.
    type Player: Serialize + DeserializeOwned + Default + Send;

    /// The kinds of actor and the messages; called once per line created
    /// (keep it cheap and always the same).
    fn schema(&self) -> Schema;

    /// Ticks per second.
    fn tick_hz(&self) -> u32 {
        20
    }

    /// The game's zones (maps), each with lines of its own: a line's
    /// bounds and walls stop moving actors (those of kinds made with
    /// `KindSpec::moving`), and clients draw its map. Players enter the
    /// first zone (unless their saved place says otherwise, see
    /// [`crate::Entrance`]) and go from zone to zone with
    /// [`Ctx::travel`]. Empty (the default): one zone without a map, for a
    /// game where nothing moves.
    fn zones(&self) -> Vec<Zone> {
        Vec::new()
    }

    /// How actors of `kind` (a moving kind) move in `zone` (`None`: the
    /// game has no maps): by default as the schema says, and so does a
    /// `None` answer. A game where some zones are slower (deep snow, narrow
    /// caves) says so here; clients learn each kind's speed in a zone when
    /// they enter it (`Joined`).
    fn movement_in(&self, zone: Option<&Zone>, kind: &KindSpec) -> Option<Movement> {
        let _ = zone;
        kind.movement
    }

    /// How far a player sees moving actors in `zone` (`None`: the game has
    /// no maps), in cells, from the actor it controls (see
    /// [`Ctx::control`]): beyond it, they are not sent. By default the
    /// zone's `view_radius` (20 without a map).
    fn view_radius(&self, zone: Option<&Zone>) -> u32 {
        zone.map_or(20, |z| z.spec.view_radius)
    }

    /// Bytes per second each client may be sent (replication and
    /// messages): what does not fit a tick waits, by priority.
    fn bytes_per_second(&self) -> u32 {
        64_000
    }

    /// Players a line of `zone` holds (`None`: the game has no maps); the
    /// host opens another line when every line of the zone is full. By
    /// default the zone's `line_capacity` (64 without a map).
    fn line_capacity(&self, zone: Option<&Zone>) -> usize {
        zone.map_or(64, |z| z.spec.line_capacity as usize)
    }

    /// The zone a player enters the game in, by name, from their saved
    /// data (where they logged out, say); `None` or a name that is not a
    /// zone: the first zone. Hearth then puts them in the first line of
    /// it with room.
    fn entry_zone(&self, data: &Self::Player) -> Option<String> {
        let _ = data;
        None
    }

    /// The PreLogin decision: called once the player's credentials are
    /// checked and before the session is welcomed. Refuse with a reason
    /// the client shows (a ban, a closed beta, a version the game no
    /// longer serves). Keep it quick: it runs on the login path.
    fn pre_login(&self, login: &LoginInfo<'_>) -> PreLogin {
        let _ = login;
        PreLogin::Accept
    }

    /// A new line's state; actors the line starts with are spawned here.
    fn new_line(&self, ctx: &mut Ctx<'_, Self::Player>) -> Self::Line;

    /// A player arrived (their saved data is in `ctx.player_data`).
    fn on_join(&self, line: &mut Self::Line, ctx: &mut Ctx<'_, Self::Player>, player: PlayerId) {
        let _ = (line, ctx, player);
    }

    /// The player's data is about to be saved (once per save period, and
    /// when they leave): bring it up to date with what the game keeps
    /// elsewhere (where their actor stands, say) through
    /// `Ctx::player_data_mut`. A player whose data did not change is not
    /// written.
    fn before_save(
        &self,
        line: &mut Self::Line,
        ctx: &mut Ctx<'_, Self::Player>,
        player: PlayerId,
    ) {
        let _ = (line, ctx, player);
    }

    /// A player is leaving; their data is saved after this returns.
    fn on_leave(&self, line: &mut Self::Line, ctx: &mut Ctx<'_, Self::Player>, player: PlayerId) {
        let _ = (line, ctx, player);
    }

    /// A message the schema declares `to_server`, decoded and within its
    /// rate limit (what is not never reaches the game).
    fn on_message(
        &self,
        line: &mut Self::Line,
        ctx: &mut Ctx<'_, Self::Player>,
        player: PlayerId,
        message: MessageId,
        values: &[Value],
    ) {
        let _ = (line, ctx, player, message, values);
    }

    /// Once per tick, after the tick's messages and due timers.
    fn on_tick(&self, line: &mut Self::Line, ctx: &mut Ctx<'_, Self::Player>) {
        let _ = (line, ctx);
    }

    /// An actor's walk ([`Ctx::walk_to`]) ended this tick: it `arrived`,
    /// or a wall stopped it on the way. Not called for a walk the game
    /// ended itself ([`Ctx::stop`], a despawn, giving the actor to a
    /// player).
    fn on_walk_end(
        &self,
        line: &mut Self::Line,
        ctx: &mut Ctx<'_, Self::Player>,
        actor: ActorId,
        arrived: bool,
    ) {
        let _ = (line, ctx, actor, arrived);
    }

    /// Something the host could not do for a player, that the game may want
    /// to tell them about: a change of line or zone refused (line full,
    /// too soon after the last one), a message for a player by name who is
    /// not online.
    fn on_refused(
        &self,
        line: &mut Self::Line,
        ctx: &mut Ctx<'_, Self::Player>,
        player: PlayerId,
        refused: &Refused,
    ) {
        let _ = (line, ctx, player, refused);
    }

    /// An administrator's announcement to everyone (`hearth admin
    /// announce`); show it as the game shows such things.
    fn on_announce(&self, line: &mut Self::Line, ctx: &mut Ctx<'_, Self::Player>, text: &str) {
        let _ = (line, ctx, text);
    }

    /// A timer set with [`Ctx::after`] is due.
    fn on_timer(
        &self,
        line: &mut Self::Line,
        ctx: &mut Ctx<'_, Self::Player>,
        timer: TimerId,
        tag: u64,
    ) {
        let _ = (line, ctx, timer, tag);
    }
}
