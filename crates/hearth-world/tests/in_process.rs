//! The built-in world as a game on the game API, played in process: every
//! line of it in a `GameLines` (as the server's game host runs them), each
//! player a client replica fed the bytes their session would get. Portals,
//! line changes, whispers across zones, zone chat, announcements,
//! snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::schema::Value;
use hearth_game::{
    GameLine, GameLines, GameOutput, Joining, LinesOutput, ObserverId, OtherNode, PlayerId, Pos,
    RelayedError,
};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_world::{parse_zone_file, WorldGame, WorldPlayer, Zone, DEFAULT_ZONES};

/// The default zones, each line holding `capacity` players.
fn zones(capacity: u32) -> Vec<Zone> {
    parse_zone_file(DEFAULT_ZONES)
        .unwrap()
        .into_iter()
        .map(|zone| {
            let mut spec = zone.spec;
            spec.line_capacity = capacity;
            Zone::new(spec).unwrap()
        })
        .collect()
}

/// What one client saw.
struct Client {
    replica: GameReplica,
    /// Messages received: (name, values).
    messages: Vec<(String, Vec<Value>)>,
    joins: usize,
}

struct World {
    lines: GameLines<WorldGame>,
    clients: BTreeMap<PlayerId, Client>,
    /// Data saved per player, newest last.
    saves: BTreeMap<PlayerId, Vec<u8>>,
    now_ms: u64,
    /// Reliable messages for this player are held back a step, delivered
    /// after the next step's frames (a lost and resent datagram).
    hold_reliable: Option<PlayerId>,
    held: Vec<(PlayerId, u16, Vec<u8>)>,
    /// What observers of lines were sent, in order.
    observed: Vec<(ObserverId, u16, Vec<u8>)>,
    /// Every message the clients were given, in order.
    delivered: Vec<(PlayerId, u16, Vec<u8>)>,
    /// What the lines handed out for other nodes of a cluster.
    elsewhere: Vec<LinesOutput>,
}

impl World {
    fn new(capacity: u32) -> Self {
        let game = Arc::new(WorldGame::new(zones(capacity)).unwrap());
        Self {
            lines: GameLines::new(game, 7),
            clients: BTreeMap::new(),
            saves: BTreeMap::new(),
            now_ms: 0,
            hold_reliable: None,
            held: Vec::new(),
            observed: Vec::new(),
            delivered: Vec::new(),
            elsewhere: Vec::new(),
        }
    }

    /// As a node of a cluster: other nodes run lines of the same zones.
    fn on_a_node(mut self) -> Self {
        self.lines = self.lines.with_other_nodes();
        self
    }

    /// As a node of a cluster that places players by load.
    fn placing(mut self) -> Self {
        self.lines = self.lines.with_placement();
        self
    }

    /// As a node of a cluster that leaves `zones` to other nodes.
    fn without(mut self, zones: &[&str]) -> Self {
        self.lines = self.lines.with_zones_elsewhere(zones.iter().copied());
        self
    }

    fn join(&mut self, player: PlayerId, name: &str, saved: Option<WorldPlayer>) {
        let schema = Arc::new(hearth_world::world_schema());
        self.clients.insert(
            player,
            Client {
                replica: GameReplica::new(schema),
                messages: Vec::new(),
                joins: 0,
            },
        );
        assert!(self.lines.enter(Joining {
            player,
            name: name.to_owned(),
            saved: saved.map(|s| serde_json::to_vec(&s).unwrap()),
            bytes_per_second: None,
        }));
    }

    fn step(&mut self) {
        self.now_ms += 50;
        let mut outputs: Vec<LinesOutput> = self.lines.step(self.now_ms).collect();
        // Last step's held reliable messages arrive after this step's frames.
        outputs.extend(std::mem::take(&mut self.held).into_iter().map(
            |(player, channel, bytes)| LinesOutput::Send {
                player,
                channel,
                bytes,
            },
        ));
        for output in outputs {
            match output {
                LinesOutput::Send {
                    player,
                    channel,
                    bytes,
                } if channel == RELIABLE_CHANNEL
                    && self.hold_reliable == Some(player)
                    && !self.held.iter().any(|h| h.2 == bytes) =>
                {
                    self.held.push((player, channel, bytes));
                }
                LinesOutput::Send {
                    player,
                    channel,
                    bytes,
                } => {
                    self.delivered.push((player, channel, bytes.clone()));
                    let client = self.clients.get_mut(&player).expect("a client");
                    match channel {
                        RELIABLE_CHANNEL => client.replica.apply_reliable(&bytes).unwrap(),
                        _ => client.replica.apply_frame(&bytes).unwrap(),
                    }
                    let schema = client.replica.schema().clone();
                    while let Some(event) = client.replica.poll_event() {
                        match event {
                            GameEvent::Message { index, values } => {
                                let name = schema.messages()[usize::from(index)].name.clone();
                                client.messages.push((name, values));
                            }
                            GameEvent::Joined { .. } => client.joins += 1,
                            _ => {}
                        }
                    }
                }
                LinesOutput::Save { player, data, .. } => {
                    self.saves.insert(player, data);
                }
                LinesOutput::Close { .. } => {}
                LinesOutput::ToZoneElsewhere { .. }
                | LinesOutput::ToNamedElsewhere { .. }
                | LinesOutput::Departed(_) => self.elsewhere.push(output),
                LinesOutput::Observed {
                    observer,
                    channel,
                    bytes,
                    ..
                } => self.observed.push((observer, channel, bytes)),
            }
        }
        for (player, client) in &mut self.clients {
            if let Some(ack) = client.replica.poll_ack() {
                let _ = self.lines.input(*player, STATE_CHANNEL, &ack);
            }
        }
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    fn send(&mut self, player: PlayerId, message: &str, values: Vec<Value>) {
        let bytes = self.clients[&player]
            .replica
            .message(message, values)
            .unwrap();
        self.lines.input(player, RELIABLE_CHANNEL, &bytes).unwrap();
    }

    /// Bytes for `player`'s line: whether the line took them (a message
    /// beyond its rate limit is dropped).
    fn try_send(&mut self, player: PlayerId, message: &str, values: Vec<Value>) -> bool {
        let bytes = self.clients[&player]
            .replica
            .message(message, values)
            .unwrap();
        self.lines.input(player, RELIABLE_CHANNEL, &bytes).is_ok()
    }

    fn say(&mut self, player: PlayerId, scope: i64, to: &str, text: &str) {
        self.send(
            player,
            "say",
            vec![
                Value::Int(scope),
                Value::Str(to.into()),
                Value::Str(text.into()),
            ],
        );
    }

    fn client(&self, player: PlayerId) -> &Client {
        &self.clients[&player]
    }

    /// The texts of the chat messages `player` received.
    fn chat(&self, player: PlayerId) -> Vec<String> {
        self.client(player)
            .messages
            .iter()
            .filter(|(name, _)| name == "chat")
            .map(|(_, values)| match &values[3] {
                Value::Str(text) => text.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// The reasons of the refusals `player` received.
    fn refusals(&self, player: PlayerId) -> Vec<String> {
        self.client(player)
            .messages
            .iter()
            .filter(|(name, _)| name == "refused")
            .map(|(_, values)| match &values[1] {
                Value::Str(reason) => reason.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn zone_of(&self, player: PlayerId) -> String {
        let key = self.lines.directory().line_of(player).unwrap();
        self.lines.zone_names()[usize::from(key.zone)].clone()
    }

    fn line_of(&self, player: PlayerId) -> u32 {
        self.lines.directory().line_of(player).unwrap().number
    }
}

fn saved_at(zone: &str, cx: i32, cy: i32) -> WorldPlayer {
    WorldPlayer {
        zone: Some(zone.to_owned()),
        at: Some(Pos::cell_centre(cx, cy)),
        ..WorldPlayer::default()
    }
}

#[test]
fn a_player_who_steps_onto_the_meadows_portal_arrives_in_town() {
    let mut world = World::new(50);
    // Beside the meadow's portal (at [46, 14], to the town's [2, 10]).
    world.join(1, "ann", Some(saved_at("meadow", 45, 14)));
    world.steps(3);
    let me = world
        .client(1)
        .replica
        .controlled()
        .expect("a player actor");
    assert_eq!(
        world.client(1).replica.position(me),
        Some(Pos::cell_centre(45, 14))
    );
    let meadow_map = world.client(1).replica.map().to_owned();
    // Walk east onto the portal's cell, at the legal speed.
    for _ in 0..40 {
        let in_meadow = world.zone_of(1) == "meadow";
        let replica = &mut world.clients.get_mut(&1).unwrap().replica;
        if let Some(at) = replica.controlled().and_then(|me| replica.position(me)) {
            if at.cell() != (46, 14) && in_meadow {
                let _ = replica.move_to(at.step_towards(Pos::cell_centre(46, 14), 25));
            }
        }
        world.step();
    }
    assert_eq!(world.zone_of(1), "town");
    let client = world.client(1);
    assert_eq!(client.joins, 2, "joined the meadow, then the town");
    assert_ne!(client.replica.map(), meadow_map, "the town's map");
    let me = client.replica.controlled().expect("steering again");
    assert_eq!(
        client.replica.position(me),
        Some(Pos::cell_centre(2, 10)),
        "at the portal's arrival point"
    );
    // Nothing of the meadow stayed: every actor is of the town's line.
    let town = world.lines.directory().line_of(1).unwrap();
    assert_eq!(
        client.replica.actors().count(),
        world.lines.line(town).unwrap().in_view(1).unwrap()
    );
    // Saved on the way, in the meadow, where they stepped off.
    let saved: WorldPlayer = serde_json::from_slice(&world.saves[&1]).unwrap();
    assert_eq!(saved.zone.as_deref(), Some("meadow"));
    // And a save after that: the town, once recorded.
    world.lines.leave(1);
    world.steps(2);
    let saved: WorldPlayer = serde_json::from_slice(&world.saves[&1]).unwrap();
    assert_eq!(saved.zone.as_deref(), Some("town"));
    assert_eq!(saved.at, Some(Pos::cell_centre(2, 10)));
}

#[test]
fn a_traveller_whose_joined_comes_after_the_next_lines_frames_ends_up_in_town_as_it_is() {
    let mut world = World::new(50);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.steps(3);
    // Ann travels; every reliable message of hers comes a step late, so the
    // town's first frames reach her before the town's Joined.
    world.hold_reliable = Some(1);
    world.send(1, "travel", vec![Value::Str("town".into())]);
    world.steps(6);
    world.hold_reliable = None;
    world.steps(4);
    assert_eq!(world.zone_of(1), "town");
    let client = world.client(1);
    assert_eq!(client.joins, 2);
    let town = world.lines.directory().line_of(1).unwrap();
    let line = world.lines.line(town).unwrap();
    assert_eq!(client.replica.actors().count(), line.in_view(1).unwrap());
    // Every actor she has is the town's, as the town has it.
    let me = client.replica.controlled().expect("steering in town");
    assert_eq!(
        client.replica.server_position(me),
        line.position(me),
        "her own actor as the town has it"
    );
}

#[test]
fn a_line_change_needs_room_and_waits_out_the_cooldown() {
    let mut world = World::new(1);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.steps(3);
    assert_eq!((world.line_of(1), world.line_of(2)), (1, 2));
    world.send(1, "switch_line", vec![Value::Int(2)]);
    world.send(2, "switch_line", vec![Value::Int(7)]);
    world.steps(3);
    assert_eq!(world.refusals(1), ["line 2 is full"]);
    assert_eq!(world.refusals(2), ["line 7 is not open (open lines: 1, 2)"]);
    // Bo leaves: line 2 stays open (empty, within its grace) and has room.
    world.lines.leave(2);
    world.steps(2);
    world.send(1, "switch_line", vec![Value::Int(2)]);
    world.steps(3);
    assert_eq!(world.line_of(1), 2);
    assert_eq!(world.client(1).joins, 2);
    // Back a second later (the message's rate limit allows it again, the
    // change's cooldown does not).
    world.steps(20);
    world.send(1, "switch_line", vec![Value::Int(1)]);
    world.steps(2);
    let refusals = world.refusals(1);
    assert!(
        refusals
            .last()
            .unwrap()
            .starts_with("you changed place a moment ago"),
        "{refusals:?}"
    );
    assert_eq!(world.lines.directory().transfers_refused(), 3);
}

#[test]
fn whispers_cross_zones_and_bounce_off_names_nobody_has() {
    let mut world = World::new(50);
    world.join(1, "ann", None);
    world.join(2, "Bo", Some(saved_at("town", 4, 10)));
    world.steps(3);
    assert_eq!(
        (world.zone_of(1).as_str(), world.zone_of(2).as_str()),
        ("meadow", "town")
    );
    world.say(1, 2, "bo", "psst");
    world.say(1, 2, "nobody", "hello?");
    world.steps(3);
    assert_eq!(world.chat(2), ["psst"], "names compare without case");
    assert_eq!(world.chat(1), ["psst", "hello?"], "the sender sees both");
    assert_eq!(
        world.refusals(1),
        ["nobody is not online: whispers reach online players only"]
    );
}

/// Carries what `from`'s lines handed out for other nodes to `to`, as the
/// cluster's relay does; a message by name `to` does not take comes back
/// to its sender as undelivered. A player handed over is a visitor there
/// unless `to` is their home.
fn relay(from: &mut World, to: &mut World) {
    hand_over(from, to, true);
}

fn hand_over(from: &mut World, to: &mut World, visitors: bool) {
    for output in std::mem::take(&mut from.elsewhere) {
        match output {
            LinesOutput::ToZoneElsewhere {
                zone,
                message,
                body,
            } => {
                to.lines
                    .deliver_to_zone(&zone, message.index(), &body)
                    .unwrap();
            }
            LinesOutput::ToNamedElsewhere {
                sender,
                name,
                message,
                body,
            } => {
                let delivered = to
                    .lines
                    .deliver_to_named(&name, message.index(), &body)
                    .unwrap();
                if !delivered {
                    from.lines.undelivered(sender, name);
                }
            }
            LinesOutput::Departed(handoff) => {
                let client = from.clients.remove(&handoff.player).expect("a client");
                to.clients.insert(handoff.player, client);
                assert!(to.lines.arrive(handoff, visitors), "taken in");
            }
            other => panic!("{other:?} is not for other nodes"),
        }
    }
}

/// The names of the players `player`'s client sees.
fn sees(world: &World, player: PlayerId) -> Vec<String> {
    let replica = &world.client(player).replica;
    let (_, kind) = replica.schema().kind("player").unwrap();
    let at = kind.prop_index("name").unwrap();
    let mut names: Vec<String> = replica
        .actors()
        .filter(|(_, a)| a.kind == 0)
        .filter_map(|(_, a)| match &a.values[at] {
            Value::Str(name) => Some(name.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_player_goes_to_a_zone_another_node_runs_plays_there_and_comes_back() {
    // Node a runs the meadow and the town; node b runs the caves.
    let mut a = World::new(50).on_a_node().without(&["caves"]);
    let mut b = World::new(50).on_a_node().without(&["meadow", "town"]);
    a.join(1, "ann", None);
    // Bo's saved place is in the caves: entering the game on a, he is handed
    // to b at once, with his data.
    a.join(2, "bo", Some(saved_at("caves", 3, 3)));
    a.steps(1);
    relay(&mut a, &mut b);
    b.steps(3);
    assert_eq!(b.zone_of(2), "caves");
    assert_eq!(a.zone_of(1), "meadow");
    assert!(a.lines.directory().line_of(2).is_none());

    // Ann travels to the caves: a's line lets her go, b takes her in.
    a.send(1, "travel", vec![Value::Str("caves".into())]);
    a.steps(3);
    assert!(
        matches!(&a.elsewhere[..], [LinesOutput::Departed(h)] if h.data.is_some() && h.zone == "caves"),
        "handed out with her data (the host saves it on the way, as any move): {:?}",
        a.elsewhere
    );
    relay(&mut a, &mut b);
    b.steps(3);
    assert_eq!(b.zone_of(1), "caves");
    assert!(a.lines.directory().line_of(1).is_none(), "a forgot her");
    assert_eq!(b.client(1).joins, 2, "joined her second line");
    assert_eq!(
        b.line_of(1),
        b.line_of(2),
        "with Bo, in b's line of the caves"
    );
    assert_eq!(sees(&b, 1)[0], "ann", "her client follows b's line");

    // A move too soon after the last is refused there, as on one node;
    // after the cooldown she goes back to the meadow, on a.
    b.send(1, "travel", vec![Value::Str("meadow".into())]);
    b.steps(2);
    assert!(
        b.refusals(1).iter().any(|r| r.contains("a moment ago")),
        "{:?}",
        b.refusals(1)
    );
    b.steps(60);
    b.send(1, "travel", vec![Value::Str("meadow".into())]);
    b.steps(3);
    hand_over(&mut b, &mut a, false);
    a.steps(3);
    assert_eq!(a.zone_of(1), "meadow");
    assert_eq!(a.client(1).joins, 3);

    // Bo's session ends on b: his last save is made there (the host sends
    // it home).
    b.lines.leave(2);
    b.steps(2);
    assert!(b.saves.contains_key(&2));
    assert!(b.lines.directory().line_of(2).is_none());

    // A player who leaves while on the way out (the travel approved, the
    // line not yet let go) is saved where they were, not handed over.
    a.steps(60);
    a.send(1, "travel", vec![Value::Str("caves".into())]);
    a.step();
    a.lines.leave(1);
    a.saves.remove(&1);
    a.steps(3);
    assert!(a.elsewhere.is_empty(), "{:?}", a.elsewhere);
    assert!(!a.lines.contains(1));
    assert!(a.saves.contains_key(&1), "her last save");

    // One whose session ends in the step they enter the game in a zone run
    // elsewhere leaves the game here, with their data: never handed out.
    a.join(3, "cy", Some(saved_at("caves", 3, 3)));
    a.lines.leave(3);
    a.steps(1);
    assert!(a.elsewhere.is_empty(), "{:?}", a.elsewhere);
    assert!(!a.lines.contains(3));
    let saved: WorldPlayer = serde_json::from_slice(&a.saves[&3]).unwrap();
    assert_eq!(saved.zone.as_deref(), Some("caves"));
}

#[test]
fn on_two_nodes_zone_chat_and_whispers_cross_and_what_breaks_the_schema_is_refused() {
    let mut a = World::new(50).on_a_node();
    let mut b = World::new(50).on_a_node();
    a.join(1, "ann", None);
    b.join(2, "Bo", None);
    b.join(3, "cy", Some(saved_at("town", 4, 10)));
    a.steps(3);
    b.steps(3);
    a.say(1, 0, "", "meadow folk!");
    a.say(1, 2, "BO", "psst");
    a.say(1, 2, "nobody", "hello?");
    a.steps(2);
    relay(&mut a, &mut b);
    a.steps(2);
    b.steps(2);
    assert_eq!(b.chat(2), ["meadow folk!", "psst"]);
    assert!(b.chat(3).is_empty(), "zone chat stays in its zone");
    assert_eq!(a.chat(1), ["meadow folk!", "psst", "hello?"]);
    assert_eq!(
        a.refusals(1),
        ["nobody is not online: whispers reach online players only"]
    );
    // Only what the other nodes need: zone chat and whispers to names not
    // here; a whisper to a player here stays here.
    b.say(2, 2, "cy", "local");
    b.steps(2);
    assert!(b.elsewhere.is_empty(), "{:?}", b.elsewhere);
    assert_eq!(b.chat(3), ["local"]);

    // What another node hands over is checked against the schema.
    let schema = hearth_world::world_schema();
    let (chat, _) = schema.message("chat").unwrap();
    let (say, _) = schema.message("say").unwrap();
    assert_eq!(
        b.lines.deliver_to_zone("meadow", 999, &[]),
        Err(RelayedError::UnknownMessage(999))
    );
    assert!(matches!(
        b.lines.deliver_to_zone("meadow", say, &[]),
        Err(RelayedError::NotToClient(_))
    ));
    assert!(matches!(
        b.lines.deliver_to_named("bo", chat, &[0xff; 8]),
        Err(RelayedError::Undecodable(..))
    ));
    // A zone this game does not have reaches no line.
    let mut body = Vec::new();
    schema.messages()[usize::from(chat)]
        .encode(
            &[
                Value::Int(0),
                Value::Str("ann".into()),
                Value::Str("".into()),
                Value::Str("hi".into()),
            ],
            &mut body,
        )
        .unwrap();
    assert_eq!(b.lines.deliver_to_zone("atlantis", chat, &body), Ok(0));
    assert_eq!(b.lines.deliver_to_zone("meadow", chat, &body), Ok(1));
    assert_eq!(b.lines.deliver_to_named("nobody", chat, &body), Ok(false));
}

#[test]
fn a_whisper_to_a_player_on_the_way_to_another_zone_reaches_them_there() {
    let mut world = World::new(50);
    world.join(1, "ann", None);
    world.join(2, "bo", Some(saved_at("town", 4, 10)));
    world.steps(3);
    // In one step: Ann's travel is approved, and Bo's whisper finds her on
    // her way (her old line lets go of her at the next step).
    world.send(1, "travel", vec![Value::Str("caves".into())]);
    world.say(2, 2, "ann", "catch you in the caves");
    world.steps(4);
    assert_eq!(world.zone_of(1), "caves");
    assert_eq!(world.chat(1), ["catch you in the caves"]);
    assert!(world.refusals(2).is_empty(), "{:?}", world.refusals(2));
}

#[test]
fn a_line_change_does_not_refill_the_chat_burst() {
    let mut world = World::new(1);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.steps(3);
    world.lines.leave(2);
    world.steps(2);
    // Ann spends her burst of five, then moves to line 2 at once.
    let line = |text: &str| {
        vec![
            Value::Int(1),
            Value::Str("".into()),
            Value::Str(text.into()),
        ]
    };
    let spent = (0..5)
        .filter(|i| world.try_send(1, "say", line(&format!("burst {i}"))))
        .count();
    assert_eq!(spent, 5);
    world.send(1, "switch_line", vec![Value::Int(2)]);
    world.steps(3);
    assert_eq!(world.line_of(1), 2);
    // In the new line the bucket is as she left it (a few ticks' refill):
    // at most one more message, not a fresh burst of five.
    let again = (0..5)
        .filter(|i| world.try_send(1, "say", line(&format!("again {i}"))))
        .count();
    assert!(again <= 1, "{again} messages passed right after the move");
}

#[test]
fn zone_chat_reaches_every_line_of_the_zone_and_no_other_zone() {
    let mut world = World::new(1);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.join(3, "cy", Some(saved_at("town", 4, 10)));
    world.steps(3);
    assert_eq!((world.line_of(1), world.line_of(2)), (1, 2));
    world.say(1, 0, "", "meadow folk!");
    world.say(1, 1, "", "just this line");
    world.steps(3);
    assert_eq!(world.chat(1), ["meadow folk!", "just this line"]);
    assert_eq!(world.chat(2), ["meadow folk!"]);
    assert!(world.chat(3).is_empty());
}

#[test]
fn chat_that_breaks_the_text_rules_is_refused_and_an_announcement_reaches_every_line() {
    let mut world = World::new(1);
    world.join(1, "ann", None);
    world.join(2, "bo", Some(saved_at("town", 4, 10)));
    world.steps(3);
    world.say(1, 1, "", "evil \u{202e}text");
    world.steps(2);
    assert!(world.chat(1).is_empty());
    assert_eq!(world.refusals(1).len(), 1, "{:?}", world.refusals(1));
    world.lines.announce("the server restarts soon");
    world.steps(2);
    assert_eq!(world.chat(1), ["the server restarts soon"]);
    assert_eq!(world.chat(2), ["the server restarts soon"]);
}

#[test]
fn npcs_wander_and_a_snapshotted_line_goes_on_byte_for_byte() {
    let mut spec = zones(50).remove(0).spec;
    spec.portals.clear();
    let zone = Zone::new(spec).unwrap();
    let game = Arc::new(WorldGame::new(vec![zone]).unwrap());
    let mut line = GameLine::new(game.clone(), 3);
    line.join_as(1, "ann", None);
    let npc = |line: &GameLine<WorldGame>| line.state().npc_count();
    assert_eq!(npc(&line), 12);
    for _ in 0..200 {
        line.tick();
        line.drain_outputs().for_each(drop);
    }
    let snapshot = line.snapshot();
    let mut restored = GameLine::restore(game, &snapshot).unwrap();
    let mut moved = 0;
    for _ in 0..200 {
        line.tick();
        restored.tick();
        let a: Vec<GameOutput> = line.drain_outputs().collect();
        let b: Vec<GameOutput> = restored.drain_outputs().collect();
        assert_eq!(a, b);
        moved += a.len();
    }
    assert!(moved > 0, "the NPCs walked, and the player was told");
}

/// Feeds a client's bytes to a replica, as a replay does.
fn apply(replica: &mut GameReplica, channel: u16, bytes: &[u8]) {
    match channel {
        RELIABLE_CHANNEL => replica.apply_reliable(bytes).unwrap(),
        _ => replica.apply_frame(bytes).unwrap(),
    }
}

/// What a replica shows of every actor: kind and every property.
fn seen(replica: &GameReplica) -> BTreeMap<u32, (u16, Vec<Value>)> {
    replica
        .actors()
        .map(|(id, actor)| (id.0, (actor.kind, actor.values.clone())))
        .collect()
}

#[test]
fn a_recording_of_a_line_or_of_a_player_starts_complete_and_sees_what_the_players_see() {
    let mut world = World::new(50);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.steps(5);
    let meadow = world.lines.line_named("meadow", 1).expect("open");
    assert_eq!(world.lines.line_named("meadow", 2), None);
    let observer = world.lines.observe(meadow).expect("room for one");
    // Ann's recording starts now: her client is sent everything again.
    assert!(world.lines.resync(1));
    let schema = Arc::new(hearth_world::world_schema());
    let mut watched = GameReplica::new(schema.clone());
    let mut ann_again = GameReplica::new(schema.clone());
    for step in 0..60 {
        // Ann walks; both chat to the line now and then.
        let replica = &mut world.clients.get_mut(&1).unwrap().replica;
        if let Some(at) = replica.controlled().and_then(|me| replica.position(me)) {
            let _ = replica.move_to(at.step_towards(Pos::cell_centre(30, 20), 25));
        }
        if step == 20 {
            world.say(2, 1, "", "hello line");
        }
        let (observed, delivered) = (world.observed.len(), world.delivered.len());
        world.step();
        for (o, channel, bytes) in &world.observed[observed..] {
            assert_eq!(*o, observer);
            apply(&mut watched, *channel, bytes);
        }
        // The recording of Ann: every message her session got from now on.
        for (_, channel, bytes) in world.delivered[delivered..].iter().filter(|d| d.0 == 1) {
            apply(&mut ann_again, *channel, bytes);
        }
    }
    // Ann's client started afresh at the resync, and is whole.
    assert_eq!(world.client(1).joins, 2, "a second Joined");
    let live = &world.client(1).replica;
    assert_eq!(seen(&ann_again), seen(live));
    assert!(live.actors().count() > 2, "players and NPCs");
    assert_eq!(ann_again.controlled(), live.controlled());
    assert_eq!(ann_again.map(), live.map());
    // The observer has every actor of the line (players and NPCs), as the
    // line has them, and heard the line's chat.
    let line = world.lines.line(meadow).unwrap();
    assert_eq!(watched.actors().count(), line.actor_count());
    for (id, _) in watched.actors() {
        assert_eq!(watched.server_position(id), line.position(id), "{id:?}");
    }
    // Bo sees far actors' position and facing a tick or three late (Hearth
    // refreshes them less often); the rest as the observer has it.
    let watched_seen = seen(&watched);
    for (id, (kind, values)) in seen(&world.client(2).replica) {
        let (watched_kind, watched_values) = &watched_seen[&id];
        assert_eq!(*watched_kind, kind);
        assert_eq!(watched_values[3..], values[3..], "actor {id}");
    }
    let mut heard = Vec::new();
    while let Some(event) = watched.poll_event() {
        if let GameEvent::Message { index, values } = event {
            if schema.messages()[usize::from(index)].name == "chat" {
                heard.push(values[3].clone());
            }
        }
    }
    assert_eq!(heard, [Value::Str("hello line".into())]);
    assert_eq!(watched.controlled(), None, "an observer steers nothing");
    // Stopped: nothing more is sent to it.
    assert!(world.lines.stop_observing(meadow, observer));
    assert!(!world.lines.stop_observing(meadow, observer));
    let before = world.observed.len();
    world.steps(3);
    assert_eq!(world.observed.len(), before);
}

#[test]
fn an_observer_changes_nothing_the_players_are_sent() {
    let run = |observed: bool| {
        let mut world = World::new(50);
        world.join(1, "ann", None);
        world.join(2, "bo", None);
        world.steps(2);
        if observed {
            let meadow = world.lines.line_named("meadow", 1).unwrap();
            world.lines.observe(meadow).unwrap();
        }
        let mut sent = Vec::new();
        for step in 0..80 {
            if step % 10 == 0 {
                world.say(1, 1, "", &format!("line {step}"));
            }
            world.now_ms += 50;
            for output in world.lines.step(world.now_ms) {
                if let LinesOutput::Send {
                    player,
                    channel,
                    bytes,
                } = output
                {
                    sent.push((player, channel, bytes));
                }
            }
        }
        sent
    };
    let plain = run(false);
    assert!(!plain.is_empty());
    assert_eq!(plain, run(true));
}

#[test]
fn while_the_host_is_busy_travel_and_line_changes_wait_and_say_why() {
    let mut world = World::new(1);
    world.join(1, "ann", None);
    world.join(2, "bo", None);
    world.steps(3);
    assert_eq!(world.line_of(2), 2);
    world.lines.set_busy(Some(4));
    world.send(1, "travel", vec![Value::Str("town".into())]);
    world.send(2, "switch_line", vec![Value::Int(1)]);
    world.steps(3);
    assert_eq!(world.zone_of(1), "meadow");
    assert_eq!(world.line_of(2), 2);
    for player in [1, 2] {
        assert_eq!(
            world.refusals(player),
            ["the server is busy: try again in 4 s"],
            "player {player}"
        );
    }
    assert_eq!(world.lines.transfers_refused_busy, 2);
    // Admitting again: the same travel goes through.
    world.lines.set_busy(None);
    world.now_ms += 5_000;
    world.send(1, "travel", vec![Value::Str("town".into())]);
    world.steps(4);
    assert_eq!(world.zone_of(1), "town");
}

#[test]
fn a_light_client_acknowledges_walks_and_stays_where_the_server_has_it() {
    use hearth_replica::light::LightReplica;
    let game = Arc::new(WorldGame::new(zones(50)).unwrap());
    let mut lines = GameLines::new(game, 3);
    let schema = Arc::new(hearth_world::world_schema());
    let mut light = LightReplica::new(schema.clone());
    let mut full = GameReplica::new(schema);
    for (player, name) in [(1, "ann"), (2, "bo")] {
        assert!(lines.enter(Joining {
            player,
            name: name.into(),
            ..Joining::default()
        }));
    }
    let mut target: Option<Pos> = None;
    let mut now_ms = 0;
    for _ in 0..120 {
        now_ms += 50;
        let outputs: Vec<LinesOutput> = lines.step(now_ms).collect();
        for output in outputs {
            let LinesOutput::Send {
                player,
                channel,
                bytes,
            } = output
            else {
                continue;
            };
            match (player, channel) {
                (1, RELIABLE_CHANNEL) => light.apply_reliable(&bytes).unwrap(),
                (1, _) => light.apply_frame(&bytes).unwrap(),
                (2, RELIABLE_CHANNEL) => full.apply_reliable(&bytes).unwrap(),
                (2, _) => full.apply_frame(&bytes).unwrap(),
                _ => {}
            }
        }
        while full.poll_event().is_some() {}
        // Ann walks (a step a tick, just under the meadow's speed).
        if let Some(at) = light.position() {
            // Three cells away, the first way that is clear.
            let target = *target.get_or_insert_with(|| {
                let zone = Zone::from_map(light.map()).unwrap();
                [(300, 0), (-300, 0), (0, 300), (0, -300)]
                    .into_iter()
                    .map(|(dx, dy)| Pos::new(at.x + dx, at.y + dy))
                    .find(|to| zone.path_clear(at, *to))
                    .unwrap()
            });
            let step = i64::from(light.speed(0).unwrap()) * i64::from(hearth_world::UNITS_PER_CELL)
                / 20
                - 2;
            if at != target {
                light.move_to(at.step_towards(target, step));
            }
        }
        if let Some(ack) = light.poll_ack() {
            lines.input(1, STATE_CHANNEL, &ack).unwrap();
        }
        if let Some(ack) = full.poll_ack() {
            lines.input(2, STATE_CHANNEL, &ack).unwrap();
        }
    }
    let key = lines.directory().line_of(1).unwrap();
    let line = lines.line(key).unwrap();
    assert_eq!(
        line.stats().bad_acks,
        0,
        "every acknowledgement was of a frame sent"
    );
    assert_eq!(line.stats().moves_too_fast + line.stats().moves_blocked, 0);
    assert_eq!(light.corrections, 0);
    assert!(light.frames > 100);
    assert_eq!(light.position(), target, "arrived");
    // Bo's full replica sees ann where she says she is.
    let ann = player_named(&full, "ann");
    assert_eq!(full.server_position(ann), target);
    assert_eq!(
        Some(light.in_view()),
        line.in_view(1),
        "it knows every actor it sees"
    );
}

/// The actor of the player named `name` in a replica of the world.
fn player_named(replica: &GameReplica, name: &str) -> hearth_game::ActorId {
    let (_, kind) = replica.schema().kind("player").unwrap();
    let at = kind.prop_index("name").unwrap();
    replica
        .actors()
        .find(|(_, a)| a.kind == 0 && a.values[at] == Value::Str(name.into()))
        .map(|(id, _)| id)
        .unwrap()
}

#[test]
fn a_move_to_another_node_does_not_refill_the_chat_burst() {
    let mut a = World::new(50).on_a_node().without(&["caves"]);
    let mut b = World::new(50).on_a_node().without(&["meadow", "town"]);
    a.join(1, "ann", None);
    a.steps(3);
    let line = |text: &str| {
        vec![
            Value::Int(1),
            Value::Str("".into()),
            Value::Str(text.into()),
        ]
    };
    // Ann spends her burst of five on a, then goes to the caves, on b.
    let spent = (0..5)
        .filter(|i| a.try_send(1, "say", line(&format!("burst {i}"))))
        .count();
    assert_eq!(spent, 5);
    a.send(1, "travel", vec![Value::Str("caves".into())]);
    a.steps(3);
    relay(&mut a, &mut b);
    b.steps(3);
    assert_eq!(b.zone_of(1), "caves");
    // On b the bucket is as she left it (a few ticks' refill): at most one
    // more message, not a fresh burst.
    let again = (0..5)
        .filter(|i| b.try_send(1, "say", line(&format!("again {i}"))))
        .count();
    assert!(again <= 1, "{again} messages passed right after the move");
}

/// What placement reads of another node's record.
fn node(name: &str, players: u64, room: &[(&str, u64)]) -> OtherNode {
    OtherNode {
        name: name.into(),
        players,
        room: room.iter().map(|(z, r)| (z.to_string(), *r)).collect(),
        accepts: true,
    }
}

fn departed_to(world: &mut World) -> Vec<Option<String>> {
    world
        .elsewhere
        .iter()
        .map(|output| match output {
            LinesOutput::Departed(handoff) => handoff.node.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn placement_fills_other_nodes_lines_with_room_then_opens_lines_on_the_least_loaded_node() {
    // Lines of two players; a and b place by load.
    let mut a = World::new(2).on_a_node().placing();
    let mut b = World::new(2).on_a_node().placing();
    // Nobody anywhere: the first line opens here (a tie goes to this node).
    a.lines.set_other_nodes(vec![node("b", 0, &[])]);
    a.join(1, "ann", None);
    a.join(2, "bo", None);
    a.steps(1);
    assert_eq!((a.line_of(1), a.line_of(2)), (1, 1));
    assert!(a.elsewhere.is_empty());

    // a's line is full, no node has room, and b has a line's worth of
    // players fewer (two): the new line opens on b.
    a.join(3, "cy", Some(saved_at("meadow", 3, 3)));
    a.steps(1);
    assert_eq!(departed_to(&mut a), [Some("b".to_owned())]);
    relay(&mut a, &mut b);
    b.steps(3);
    assert_eq!(b.zone_of(3), "meadow");
    assert_eq!(b.line_of(3), 1);
    assert!(a.lines.directory().line_of(3).is_none());

    // b's record shows one player and a free place; a has two: not a
    // line's worth more, so a opens a line of its own (no forwarding), and
    // fills it.
    a.lines
        .set_other_nodes(vec![node("b", 1, &[("meadow", 1)])]);
    a.join(4, "di", None);
    a.join(5, "ed", None);
    a.steps(1);
    assert!(a.elsewhere.is_empty(), "{:?}", a.elsewhere);
    assert_eq!((a.line_of(4), a.line_of(5)), (2, 2));

    // Four against one: the next player of a goes to b's free place rather
    // than opening a line.
    a.join(6, "fi", Some(saved_at("meadow", 3, 4)));
    a.steps(1);
    assert_eq!(departed_to(&mut a), [Some("b".to_owned())]);
    relay(&mut a, &mut b);
    b.steps(10);
    assert_eq!(b.line_of(6), b.line_of(3), "in the same line of b");
    assert_eq!(sees(&b, 6), ["cy", "fi"], "and they see each other there");

    // b full at two, a at four: a new line on b; then b at four too, and a
    // opens its own.
    a.lines
        .set_other_nodes(vec![node("b", 2, &[("meadow", 0)])]);
    a.join(7, "gi", None);
    a.steps(1);
    assert_eq!(departed_to(&mut a), [Some("b".to_owned())]);
    a.elsewhere.clear();
    a.lines
        .set_other_nodes(vec![node("b", 4, &[("meadow", 1)])]);
    a.join(8, "hal", None);
    a.steps(1);
    assert!(a.elsewhere.is_empty(), "{:?}", a.elsewhere);
    assert_eq!(a.line_of(8), 3);

    // Several in one step do not all pile onto one node before its record
    // says so: each placed counts there at once.
    let mut c = World::new(1).on_a_node().placing();
    c.lines
        .set_other_nodes(vec![node("d", 0, &[]), node("e", 1, &[])]);
    for (player, name) in [(10, "fay"), (11, "gus"), (12, "hal"), (13, "ida")] {
        c.join(player, name, None);
    }
    c.steps(1);
    // Lines of one, so a line's worth is one player. fay: here (0 against
    // 0); gus: to d (0 against 1 here); hal: here, since gus counts on d
    // now (d 1, e 1, here 1; without that count he would follow gus to d);
    // ida: to d or e (1 against 2 here; a tie between them goes by a hash
    // seeded per node).
    let to = departed_to(&mut c);
    assert_eq!(to.len(), 2, "{to:?}");
    assert_eq!(to[0].as_deref(), Some("d"));
    assert!(matches!(to[1].as_deref(), Some("d" | "e")), "{to:?}");
}

#[test]
fn a_player_travelling_to_a_zone_whose_lines_here_are_full_is_placed_on_another_node() {
    let mut a = World::new(1).on_a_node().placing();
    // Bo is alone in a's town line (of one).
    a.join(2, "bo", Some(saved_at("town", 3, 3)));
    a.join(1, "ann", None);
    a.steps(1);
    assert_eq!(
        (a.zone_of(1), a.zone_of(2)),
        ("meadow".into(), "town".into())
    );
    // b has fewer players (a has two) and room in the town.
    a.lines.set_other_nodes(vec![node("b", 1, &[("town", 3)])]);
    a.send(1, "travel", vec![Value::Str("town".into())]);
    a.steps(3);
    assert!(
        matches!(&a.elsewhere[..], [LinesOutput::Departed(h)] if h.zone == "town" && h.node.as_deref() == Some("b") && h.data.is_some()),
        "{:?}",
        a.elsewhere
    );
    assert!(a.lines.directory().line_of(1).is_none());

    // Without placement, the same trip opens a second town line here.
    let mut alone = World::new(1).on_a_node();
    alone.join(2, "bo", Some(saved_at("town", 3, 3)));
    alone.join(1, "ann", None);
    alone.steps(1);
    alone.send(1, "travel", vec![Value::Str("town".into())]);
    alone.steps(3);
    assert!(alone.elsewhere.is_empty());
    assert_eq!((alone.zone_of(1), alone.line_of(1)), ("town".into(), 2));
}

#[test]
fn a_draining_node_hands_its_players_on_a_batch_a_step_but_keeps_its_pinned_zone() {
    // a runs everything and has the caves pinned to it; b takes players.
    let mut a = World::new(200).on_a_node().placing();
    a.lines = a.lines.with_zones_pinned_here(["caves"]);
    for player in 1..=70 {
        a.join(player, &format!("p{player}"), None);
    }
    a.join(100, "deep", Some(saved_at("caves", 3, 3)));
    // A visitor from another node, in the meadow here.
    let mut home = World::new(200).on_a_node().without(&["meadow"]);
    home.join(200, "guest", None);
    home.steps(1);
    hand_over(&mut home, &mut a, true);
    a.steps(2);
    assert_eq!(a.lines.directory().player_count(), 72);

    // Nobody takes players: only the visitor goes, home (`None`), whatever
    // order the players are drained in.
    a.lines.set_other_nodes(vec![OtherNode {
        accepts: false,
        ..node("b", 0, &[("meadow", 100)])
    }]);
    a.lines.set_draining(true);
    a.steps(2);
    assert_eq!(departed_to(&mut a), [None], "the visitor goes home");
    a.elsewhere.clear();
    a.steps(2);
    assert!(a.elsewhere.is_empty(), "{:?}", a.elsewhere);

    // b takes players: 64 a step go, to b; the caves' player stays.
    a.lines
        .set_other_nodes(vec![node("b", 0, &[("meadow", 10)])]);
    a.step();
    let first = departed_to(&mut a);
    assert_eq!(first.len(), 64, "one batch a step");
    a.elsewhere.clear();
    a.step();
    let second = departed_to(&mut a);
    assert_eq!(first.len() + second.len(), 70);
    let all: Vec<Option<String>> = first.into_iter().chain(second).collect();
    assert!(all.iter().all(|to| to.as_deref() == Some("b")), "{all:?}");
    a.elsewhere.clear();
    a.steps(3);
    assert!(a.elsewhere.is_empty());
    assert_eq!(a.lines.directory().player_count(), 1);
    assert_eq!(a.zone_of(100), "caves");

    // Nobody is placed on a draining node, and it takes no visitor.
    a.join(300, "late", None);
    a.steps(1);
    assert_eq!(departed_to(&mut a), [Some("b".to_owned())]);
    home.join(201, "guest2", None);
    home.steps(1);
    let LinesOutput::Departed(handoff) = home.elsewhere.pop().unwrap() else {
        panic!("handed out")
    };
    assert!(
        !a.lines.arrive(handoff, true),
        "a draining node takes no visitor"
    );
}

#[test]
fn a_line_saved_on_one_node_restarts_on_another_without_its_players_and_goes_on_as_it_was() {
    let mut a = World::new(50).on_a_node();
    a.join(1, "ann", None);
    a.join(2, "bo", None);
    a.steps(40);
    let meadow = a.lines.line_named("meadow", 1).unwrap();
    let state = a.lines.snapshot_line(meadow).unwrap();
    let tick = a.lines.line(meadow).unwrap().tick_count();

    // What the line is once its players have left it, one tick on.
    let game = Arc::new(WorldGame::new(zones(50)).unwrap());
    let mut expected = GameLine::restore(game, &state).unwrap();
    expected.leave(1);
    expected.leave(2);
    expected.tick();
    expected.drain_outputs().for_each(drop);

    // Node b, which runs a town line of its own, restarts the meadow line.
    let mut b = World::new(50).on_a_node();
    b.join(5, "eve", Some(saved_at("town", 3, 3)));
    b.steps(3);
    let key = b.lines.restart_line(&state, "meadow").unwrap();
    assert_eq!(b.lines.zone_names()[usize::from(key.zone)], "meadow");
    let line = b.lines.line(key).unwrap();
    assert_eq!(line.tick_count(), tick + 1, "its own ticks go on");
    assert!(line.players_and_joining().is_empty());
    assert_eq!(
        line.snapshot(),
        expected.snapshot(),
        "as it was, less its players"
    );
    let npcs = line.state().npc_count();
    assert!(npcs > 0);

    // A newcomer enters it and sees its NPCs; the ones who left are gone.
    b.join(6, "cy", None);
    b.steps(5);
    assert_eq!(b.lines.directory().line_of(6), Some(key));
    let line = b.lines.line(key).unwrap();
    assert_eq!(line.actor_count(), npcs + 1);
    assert!(b.client(6).replica.actors().count() > 1, "NPCs in view");
    assert_eq!(b.client(6).joins, 1);

    // On a node that runs a meadow line of its own, the restart is its line
    // 2, and it stays open, empty, well past the zone's grace: its state is
    // worth keeping while its players may come back.
    let mut d = World::new(50).on_a_node();
    d.join(7, "fay", None);
    d.steps(2);
    let second = d.lines.restart_line(&state, "meadow").unwrap();
    assert_eq!(second.number, 2);
    d.now_ms += hearth_game::directory::RESTARTED_LINE_WAIT_MS / 2;
    d.steps(2);
    assert!(d.lines.line(second).is_some(), "still open");
    // Nobody came: it closes in the end, as an empty extra line does.
    d.now_ms += hearth_game::directory::RESTARTED_LINE_WAIT_MS + 3_600_000;
    d.steps(2);
    assert!(d.lines.line(second).is_none(), "closed at last");

    // A line of a zone pinned to another node is not restarted here, and a
    // state that does not read is refused.
    let mut c = World::new(50).on_a_node().without(&["meadow"]);
    assert!(matches!(
        c.lines.restart_line(&state, "meadow"),
        Err(hearth_game::RestartError::ZoneElsewhere(_))
    ));
    assert!(c
        .lines
        .restart_line(b"{\"not\":\"a line\"}", "meadow")
        .is_err());
    assert!(matches!(
        b.lines.restart_line(&state, "town"),
        Err(hearth_game::RestartError::WrongZone { .. })
    ));
    c.steps(1);
}

#[test]
fn a_paused_line_waits_and_a_dropped_line_lets_its_players_go_saved_and_closed() {
    let mut a = World::new(50).on_a_node();
    a.join(1, "ann", None);
    a.join(2, "bo", None);
    a.join(3, "cy", Some(saved_at("town", 3, 3)));
    a.steps(5);
    let meadow = a.lines.line_named("meadow", 1).unwrap();
    let town = a.lines.line_named("town", 1).unwrap();
    let ticks = |w: &World, key| w.lines.line(key).unwrap().tick_count();
    let (meadow_at, town_at) = (ticks(&a, meadow), ticks(&a, town));

    a.lines.set_paused(meadow, true);
    a.say(1, 0, "", "while paused");
    a.steps(4);
    assert_eq!(ticks(&a, meadow), meadow_at, "not ticked while paused");
    assert_eq!(ticks(&a, town), town_at + 4);
    assert!(a.chat(2).is_empty());
    a.lines.set_paused(meadow, false);
    a.steps(2);
    assert_eq!(ticks(&a, meadow), meadow_at + 2);
    assert_eq!(a.chat(2), ["while paused"], "kept, then said");

    // Another node took the meadow line's lease: it is dropped here.
    a.saves.clear();
    let dropped = a.lines.drop_line(meadow, "this line moved");
    assert_eq!(dropped, [1, 2]);
    let outputs: Vec<LinesOutput> = a.lines.finish_step().collect();
    let saved: Vec<PlayerId> = outputs
        .iter()
        .filter_map(|o| match o {
            LinesOutput::Save {
                player, last: true, ..
            } => Some(*player),
            _ => None,
        })
        .collect();
    let closed: Vec<(PlayerId, &str)> = outputs
        .iter()
        .filter_map(|o| match o {
            LinesOutput::Close { player, reason } => Some((*player, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(saved, [1, 2], "their data, as at a logout");
    assert_eq!(closed, [(1, "this line moved"), (2, "this line moved")]);
    assert!(a.lines.line(meadow).is_none());
    assert!(!a.lines.contains(1) && a.lines.directory().line_of(2).is_none());
    assert_eq!(
        a.lines.directory().line_of(3),
        Some(town),
        "other lines go on"
    );
    // Ann logs in again: a new meadow line.
    a.join(1, "ann", None);
    a.steps(2);
    assert_eq!(a.zone_of(1), "meadow");
}

#[test]
fn a_line_handed_over_sends_its_players_after_it_as_they_were_in_its_snapshot() {
    let mut a = World::new(50).on_a_node();
    a.join(1, "ann", None);
    a.join(2, "bo", None);
    a.join(3, "cy", None);
    a.steps(5);
    let meadow = a.lines.line_named("meadow", 1).unwrap();
    // Paused for the move: a newcomer goes to another line meanwhile.
    a.lines.set_paused(meadow, true);
    let state = a.lines.snapshot_line(meadow).unwrap();
    a.join(4, "di", None);
    a.steps(1);
    assert_ne!(a.lines.directory().line_of(4), Some(meadow));
    // Bo's session ends during the move; Ann says something the other node
    // never sees (after the snapshot).
    a.lines.leave(2);
    a.say(1, 0, "", "lost in the move");
    a.elsewhere.clear();
    a.saves.clear();
    let followers = a
        .lines
        .hand_line_over(meadow, &state, Some("b"), "c/world/meadow/1", "moved");
    assert_eq!(followers, [1, 3]);
    a.steps(1);
    let handed: Vec<&hearth_game::Handoff> = a
        .elsewhere
        .iter()
        .map(|output| match output {
            LinesOutput::Departed(handoff) => handoff,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(handed.len(), 2);
    for handoff in handed {
        assert!([1, 3].contains(&handoff.player));
        assert_eq!(handoff.node.as_deref(), Some("b"));
        assert_eq!(handoff.line.as_deref(), Some("c/world/meadow/1"));
        assert!(handoff.data.is_some());
    }
    assert!(a.saves.contains_key(&2), "Bo's last save, as at a logout");
    assert!(a.lines.line(meadow).is_none() && !a.lines.contains(1) && !a.lines.contains(2));
    assert!(a.lines.contains(4), "Di plays on in her line");

    // Not taken up there: the players go where placement sends them (no
    // node, no line named).
    let mut b = World::new(50).on_a_node();
    b.join(1, "ann", None);
    b.steps(3);
    let meadow = b.lines.line_named("meadow", 1).unwrap();
    b.lines.set_paused(meadow, true);
    let state = b.lines.snapshot_line(meadow).unwrap();
    b.elsewhere.clear();
    b.lines
        .hand_line_over(meadow, &state, None, "c/world/meadow/1", "moved");
    b.steps(1);
    assert!(
        matches!(&b.elsewhere[..], [LinesOutput::Departed(h)] if h.node.is_none() && h.line.is_none()),
        "{:?}",
        b.elsewhere
    );
}
