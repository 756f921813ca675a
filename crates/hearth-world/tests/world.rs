//! Whole worlds run in-process: relevancy, deltas, budgets, lines opening
//! and closing, movement validation, chat, and a line's state surviving
//! serialization.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_world::actor::field;
use hearth_world::chat::ChatBucket;
use hearth_world::directory::NEW_PLAYER_VALUES;
use hearth_world::npc::Rng;
use hearth_world::wire::{self, ChatScope, Command, Frame, Item, Refusal, Reliable};
use hearth_world::{
    Allowances, Arrival, ChatHook, ChatVerdict, DirectoryConfig, Join, Line, LineConfig, LineKey,
    LineOutput, PlayerId, Pos, Replica, World, WorldEvent, Zone,
};

struct Client {
    replica: Replica,
    /// Every message received, per tick, for inspection.
    frames: Vec<Frame>,
    reliables: Vec<Reliable>,
}

struct Harness {
    world: World,
    clients: BTreeMap<PlayerId, Client>,
    now_ms: u64,
    rng: Rng,
    /// Share of frames (state channel) lost on the way to clients.
    loss_percent: u64,
    /// Bytes each client got in the last step, Entered messages excluded.
    last_step_bytes: BTreeMap<PlayerId, usize>,
}

impl Harness {
    fn new(zones: Vec<Zone>) -> Self {
        Self {
            world: World::new(zones, DirectoryConfig::default()),
            clients: BTreeMap::new(),
            now_ms: 0,
            rng: Rng::new(7),
            loss_percent: 0,
            last_step_bytes: BTreeMap::new(),
        }
    }

    fn join(&mut self, player: PlayerId, name: &str, at: Option<Pos>) -> LineKey {
        self.join_with(player, name, at, 100_000, None)
    }

    fn join_with(
        &mut self,
        player: PlayerId,
        name: &str,
        at: Option<Pos>,
        bytes_per_second: u32,
        line: Option<u32>,
    ) -> LineKey {
        let key = self
            .world
            .join(Join {
                arrival: Arrival {
                    player,
                    account: Some(player as i64),
                    name: name.into(),
                    at,
                    appearance: 1,
                    values: NEW_PLAYER_VALUES,
                    bytes_per_second,
                    epoch: 1,
                    allowances: Allowances::default(),
                },
                zone: None,
                line,
                after: None,
            })
            .unwrap()
            .expect("not waiting for anyone");
        self.clients.insert(
            player,
            Client {
                replica: Replica::default(),
                frames: Vec::new(),
                reliables: Vec::new(),
            },
        );
        key
    }

    /// One tick; clients apply what they got (frames subject to loss) and
    /// answer with their state message.
    fn step(&mut self) -> Vec<(PlayerId, WorldEvent)> {
        self.now_ms += 50;
        self.world.step(self.now_ms);
        self.last_step_bytes.clear();
        let mut events = Vec::new();
        for out in std::mem::take(&mut self.world.outgoing) {
            let Some(client) = self.clients.get_mut(&out.player) else {
                continue;
            };
            if out.channel == wire::STATE_CHANNEL {
                *self.last_step_bytes.entry(out.player).or_default() += out.bytes.len();
                if self.rng.range(0, 100) < self.loss_percent as i64 {
                    continue;
                }
                client.frames.push(Frame::decode(&out.bytes).unwrap());
                events.extend(
                    client
                        .replica
                        .apply_frame(&out.bytes)
                        .unwrap()
                        .into_iter()
                        .map(|e| (out.player, e)),
                );
            } else {
                let message = Reliable::decode(&out.bytes).unwrap();
                if !message.items.iter().any(|i| matches!(i, Item::Entered(_))) {
                    *self.last_step_bytes.entry(out.player).or_default() += out.bytes.len();
                }
                client.reliables.push(message);
                events.extend(
                    client
                        .replica
                        .apply_reliable(&out.bytes)
                        .unwrap()
                        .into_iter()
                        .map(|e| (out.player, e)),
                );
            }
        }
        let states: Vec<(PlayerId, Vec<u8>)> = self
            .clients
            .iter()
            .map(|(id, c)| (*id, c.replica.state_message().to_vec()))
            .collect();
        for (id, bytes) in states {
            self.world.receive(id, wire::STATE_CHANNEL, &bytes).unwrap();
        }
        events
    }

    fn command(&mut self, player: PlayerId, command: Command) {
        self.world
            .receive(player, wire::RELIABLE_CHANNEL, &command.to_vec())
            .unwrap();
    }

    fn line_of(&self, player: PlayerId) -> &Line {
        self.world
            .line(self.world.directory.line_of(player).unwrap())
            .unwrap()
    }

    fn pos(&self, player: PlayerId) -> Pos {
        self.line_of(player).player_props(player).unwrap().pos
    }
}

/// An open field whose extra lines stay open long after they empty.
fn lasting_zone(name: &str, capacity: u32) -> Zone {
    let mut spec = Zone::open_field(name, 64, 64).spec;
    spec.line_capacity = capacity;
    spec.empty_line_grace_secs = 600;
    Zone::new(spec).unwrap()
}

/// Two lines of a one-player-a-line zone, player 1 alone on line 1 and
/// line 2 empty (its first player came and went).
fn two_lines_one_player(zones: Vec<Zone>, name: &str) -> Harness {
    let mut h = Harness::new(zones);
    assert_eq!(h.join(1, name, None).number, 1);
    assert_eq!(h.join(2, "passer-by", None).number, 2, "line 1 is full");
    h.step();
    h.world.leave(2);
    h.clients.remove(&2);
    h.step();
    let hall_lines = h.world.directory.line_keys().filter(|k| k.zone == 0);
    assert_eq!(hall_lines.count(), 2);
    h
}

fn field_zone(npcs: u32, capacity: u32) -> Zone {
    let mut spec = Zone::open_field("field", 200, 200).spec;
    spec.npcs = npcs;
    spec.line_capacity = capacity;
    spec.empty_line_grace_secs = 1;
    Zone::new(spec).unwrap()
}

#[test]
fn far_actors_are_never_sent_and_near_ones_are() {
    let mut h = Harness::new(vec![field_zone(0, 50)]);
    h.join(1, "near-a", Some(Pos::cell_centre(10, 10)));
    h.join(2, "near-b", Some(Pos::cell_centre(15, 12)));
    h.join(3, "far", Some(Pos::cell_centre(150, 150)));
    for _ in 0..40 {
        h.step();
    }
    let line = h.line_of(1);
    let actor_of = |p: PlayerId| h.clients[&p].replica.own_actor().unwrap();
    assert!(line.known_by(1).contains(&actor_of(2)));
    assert!(!line.known_by(1).contains(&actor_of(3)));
    let far = actor_of(3);
    for message in &h.clients[&1].reliables {
        for item in &message.items {
            assert!(
                !matches!(item, Item::Spawn { id, .. } if *id == far),
                "a far actor was spawned"
            );
        }
    }
    for frame in &h.clients[&1].frames {
        assert!(
            frame.updates.iter().all(|u| u.id != far),
            "a far actor was updated"
        );
    }
    assert!(h.clients[&1].replica.find("near-b").is_some());
    assert!(h.clients[&1].replica.find("far").is_none());
}

#[test]
fn unchanged_properties_are_never_sent_once_acknowledged() {
    let mut h = Harness::new(vec![field_zone(0, 50)]);
    h.join(1, "watcher", Some(Pos::cell_centre(10, 10)));
    h.join(2, "walker", Some(Pos::cell_centre(12, 10)));
    for _ in 0..10 {
        h.step();
    }
    let walker = h.clients[&2].replica.own_actor().unwrap();
    h.clients.get_mut(&1).unwrap().frames.clear();
    // Nobody moves: the watcher gets no frames at all (dormancy).
    for _ in 0..20 {
        h.step();
    }
    assert!(
        h.clients[&1].frames.is_empty(),
        "frames while nothing changed: {:?}",
        h.clients[&1].frames.len()
    );
    // The walker walks: the watcher gets position and facing, nothing else.
    for _ in 0..10 {
        let step = h
            .clients
            .get_mut(&2)
            .unwrap()
            .replica
            .step_towards(Pos::cell_centre(20, 10));
        assert!(step.is_some());
        h.step();
    }
    let masks: Vec<u8> = h.clients[&1]
        .frames
        .iter()
        .flat_map(|f| f.updates.iter().filter(|u| u.id == walker).map(|u| u.mask))
        .collect();
    assert!(!masks.is_empty());
    assert!(
        masks.iter().all(|m| m & !(field::POS | field::FACING) == 0),
        "{masks:?}"
    );
    // Stopped again: after the acknowledgement nothing more is sent.
    h.step();
    h.step();
    h.clients.get_mut(&1).unwrap().frames.clear();
    for _ in 0..10 {
        h.step();
    }
    assert!(h.clients[&1].frames.is_empty());
    assert_eq!(
        h.clients[&1].replica.actors[&walker].props.pos,
        h.pos(2),
        "the watcher sees where the walker stopped"
    );
}

#[test]
fn the_per_tick_budget_is_never_exceeded_and_everything_arrives_eventually() {
    let mut h = Harness::new(vec![field_zone(400, 50)]);
    // 8 KB/s at 20 Hz: 400 bytes a tick, far less than 400 NPCs need.
    h.join_with(1, "slow", Some(Pos::cell_centre(100, 100)), 8_000, None);
    h.join_with(2, "fast", Some(Pos::cell_centre(100, 100)), 1_000_000, None);
    let budget_slow = hearth_world::line::MIN_BUDGET;
    for _ in 0..400 {
        h.step();
        let got = h.last_step_bytes.get(&1).copied().unwrap_or(0);
        assert!(
            got <= budget_slow,
            "{got} bytes in one tick for a {budget_slow}-byte budget"
        );
    }
    // NPCs wander; stop them by comparing at a moment: both clients see the
    // same near actors as the server, within the hysteresis.
    let line = h.line_of(1);
    let slow_known = line.known_by(1).len();
    assert!(
        slow_known > 20,
        "the slow client still got its neighbours ({slow_known})"
    );
}

#[test]
fn replicas_converge_to_the_server_state_through_loss() {
    let mut h = Harness::new(vec![field_zone(1500, 50)]);
    let centre = Pos::cell_centre(104, 104);
    h.join(1, "lossy", Some(centre));
    h.loss_percent = 40;
    for _ in 0..300 {
        h.step();
    }
    h.loss_percent = 0;
    for _ in 0..5 {
        h.step();
    }
    let line = h.line_of(1);
    let replica = &h.clients[&1].replica;
    let own = replica.own_actor().unwrap();
    let radius = line.zone().view_radius_units();
    // NPCs walk at half the legal speed; far ones are refreshed every 4th
    // tick, so they may trail by three ticks of walking.
    let trail = 3 * line.zone().step_per_tick() / 2 + 1;
    let (mut exact, mut trailing) = (0, 0);
    for id in line.known_by(1) {
        let server = &line.actor(id).unwrap().props;
        let client = &replica.actors[&id].props;
        if id == own {
            assert_eq!(replica.position, Some(server.pos));
            continue;
        }
        if server.pos.distance(centre) * 2 <= radius {
            assert_eq!(client, server, "near actor {id:?} diverged");
            exact += 1;
        } else {
            let lag = client.pos.distance(server.pos);
            assert!(
                lag <= trail,
                "far actor {id:?} is {lag} units behind (at most {trail})"
            );
            let mut same_but_pos = client.clone();
            same_but_pos.pos = server.pos;
            same_but_pos.facing = server.facing;
            assert_eq!(
                &same_but_pos, server,
                "far actor {id:?} diverged beyond its position"
            );
            trailing += 1;
        }
    }
    assert!(
        exact > 5 && trailing > 5,
        "compared {exact} near and {trailing} far actors"
    );
}

#[test]
fn a_full_line_overflows_to_a_new_one_and_empty_extra_lines_close() {
    let mut h = Harness::new(vec![field_zone(0, 2)]);
    assert_eq!(h.join(1, "a", None).number, 1);
    assert_eq!(h.join(2, "b", None).number, 1);
    assert_eq!(h.join(3, "c", None).number, 2, "line 1 is full");
    h.step();
    assert_eq!(h.world.directory.lines().len(), 2);
    // Asking for the full line is refused with a reason.
    h.command(3, Command::SwitchLine { line: 1 });
    let mut events = h.step();
    events.extend(h.step());
    assert!(events.iter().any(|(p, e)| *p == 3 && matches!(e, WorldEvent::Refused { about: Refusal::Line, reason } if reason.contains("full"))));
    // Player 1 switches to line 2; then line 1 has room and 3 goes there.
    h.command(1, Command::SwitchLine { line: 2 });
    h.step();
    h.step();
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 2);
    h.command(3, Command::SwitchLine { line: 1 });
    h.command(1, Command::SwitchLine { line: 1 });
    for _ in 0..3 {
        h.step();
    }
    assert_eq!(h.world.directory.line_of(3).unwrap().number, 1);
    // Line 2 is empty now, but 1 could not join line 1 (it changed line a
    // moment ago, and line 1 is full again): it stays.
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 2);
    h.world.leave(1);
    h.clients.remove(&1);
    for _ in 0..10 {
        h.step();
    }
    assert_eq!(
        h.world.directory.lines().len(),
        2,
        "not before the grace period"
    );
    for _ in 0..20 {
        h.step();
    }
    let lines = h.world.directory.lines();
    assert_eq!(lines.len(), 1, "the empty extra line closed: {lines:?}");
    assert!(
        h.world.saves.iter().any(|s| s.player == 1),
        "the leaver was saved"
    );
}

#[test]
fn line_switches_cool_down_like_travel_and_say_how_long_to_wait() {
    let mut h = two_lines_one_player(vec![lasting_zone("hall", 1)], "hopper");
    h.command(1, Command::SwitchLine { line: 2 });
    h.step();
    h.step();
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 2);
    assert_eq!(h.clients[&1].replica.entered.as_ref().unwrap().line, 2);

    // Straight back: refused, with the time left to wait.
    h.command(1, Command::SwitchLine { line: 1 });
    let events: Vec<_> = (0..2).flat_map(|_| h.step()).collect();
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 2);
    let heard = chats(&events, 1);
    assert!(heard.iter().any(|t| t.contains("wait 2.9 s")), "{heard:?}");
    assert_eq!(h.world.directory.transfers_refused(), 1, "counted");

    // Once the cooldown is over, the switch goes through.
    for _ in 0..60 {
        h.step();
    }
    h.command(1, Command::SwitchLine { line: 1 });
    h.step();
    h.step();
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 1);
    assert_eq!(h.world.directory.transfers_refused(), 1);
}

#[test]
fn the_chat_allowance_follows_the_player_across_lines_and_zones() {
    let zones = vec![lasting_zone("hall", 1), lasting_zone("yard", 50)];
    let mut h = two_lines_one_player(zones, "talker");
    let say = |text: &str| Command::Chat {
        scope: ChatScope::Line,
        to: String::new(),
        text: text.into(),
    };
    // The whole burst, then a line switch at once.
    for i in 0..5 {
        h.command(1, say(&format!("burst {i}")));
    }
    h.command(1, Command::SwitchLine { line: 2 });
    h.step();
    h.step();
    assert_eq!(h.world.directory.line_of(1).unwrap().number, 2);
    h.command(1, say("fresh line, fresh allowance?"));
    let events: Vec<_> = (0..2).flat_map(|_| h.step()).collect();
    let heard = chats(&events, 1);
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].contains("too fast"), "{heard:?}");

    // Three seconds later three messages have come back; spent, then
    // travel to another zone.
    for _ in 0..61 {
        h.step();
    }
    for i in 0..4 {
        h.command(1, say(&format!("again {i}")));
    }
    h.command(
        1,
        Command::Travel {
            zone: "yard".into(),
        },
    );
    let events: Vec<_> = (0..3).flat_map(|_| h.step()).collect();
    let heard = chats(&events, 1);
    assert_eq!(
        heard.iter().filter(|t| t.starts_with("again")).count(),
        3,
        "{heard:?}"
    );
    assert_eq!(h.clients[&1].replica.entered.as_ref().unwrap().zone, "yard");
    h.command(1, say("fresh zone, fresh allowance?"));
    let events: Vec<_> = (0..2).flat_map(|_| h.step()).collect();
    let heard = chats(&events, 1);
    assert!(
        heard.len() == 1 && heard[0].contains("too fast"),
        "{heard:?}"
    );
    assert_eq!(h.line_of(1).stats().chat_sent, 0);
}

#[test]
fn a_line_hands_back_exactly_the_allowances_it_was_given() {
    let zone = Arc::new(field_zone(0, 50));
    let step = zone.step_per_tick();
    let mut line = Line::new(LineConfig {
        zone,
        number: 1,
        seed: 1,
        save_every_ticks: 0,
    });
    let mut chat = ChatBucket::default();
    assert!(chat.take() && chat.take() && chat.take());
    // Five ticks of legal steps is the most a player may bank.
    for (movement, handed_back) in [
        (Some(step * 3 + 1), step * 3 + 1),
        (Some(0), 0),
        (Some(i64::MAX), step * 5),
        (Some(-7), 0),
        (None, step * 2),
    ] {
        let allowances = Allowances {
            chat: chat.clone(),
            movement,
        };
        line.input(hearth_world::LineInput::Enter(Arrival {
            player: 9,
            account: None,
            name: "carrier".into(),
            at: None,
            appearance: 0,
            values: NEW_PLAYER_VALUES,
            bytes_per_second: 20_000,
            epoch: 1,
            allowances,
        }));
        line.input(hearth_world::LineInput::Release {
            player: 9,
            to: hearth_world::Destination::Line(2),
        });
        line.tick();
        let left = line
            .drain_outputs()
            .find_map(|o| match o {
                LineOutput::Left { allowances, .. } => Some(allowances),
                _ => None,
            })
            .expect("left");
        assert_eq!(
            left,
            Allowances {
                chat: chat.clone(),
                movement: Some(handed_back)
            }
        );
    }
}

#[test]
fn illegal_moves_are_rejected_counted_and_corrected() {
    let zone = Zone::new(hearth_world::ZoneSpec {
        map: "##########\n#S...#...#\n#....#...#\n##########\n".into(),
        ..Zone::open_field("walls", 4, 4).spec
    })
    .unwrap();
    let mut h = Harness::new(vec![zone]);
    let start = Pos::cell_centre(1, 1);
    h.join(1, "cheat", Some(start));
    h.step();
    h.step();
    // A teleport across the map.
    h.clients
        .get_mut(&1)
        .unwrap()
        .replica
        .moved_to(Pos::cell_centre(3, 2));
    let mut events = h.step();
    events.extend(h.step());
    assert!(
        events.contains(&(1, WorldEvent::Corrected { pos: start })),
        "{events:?}"
    );
    assert_eq!(h.pos(1), start);
    assert_eq!(h.line_of(1).stats().rejected_too_fast, 1);
    // Walk legally to the wall, then try to step through it.
    for _ in 0..40 {
        if h.clients
            .get_mut(&1)
            .unwrap()
            .replica
            .step_towards(Pos::new(480, 150))
            .is_none()
        {
            break;
        }
        h.step();
    }
    let at_wall = h.pos(1);
    assert!(
        at_wall.x < 500,
        "stopped before the wall at x=500: {at_wall:?}"
    );
    h.step();
    let at_wall = h.pos(1);
    h.clients
        .get_mut(&1)
        .unwrap()
        .replica
        .moved_to(Pos::new(at_wall.x + 30, at_wall.y));
    let mut events = h.step();
    events.extend(h.step());
    assert!(events
        .iter()
        .any(|(_, e)| matches!(e, WorldEvent::Corrected { .. })));
    assert_eq!(h.line_of(1).stats().rejected_blocked, 1);
    assert_eq!(h.pos(1), at_wall);
    // Outside the map.
    h.clients
        .get_mut(&1)
        .unwrap()
        .replica
        .moved_to(Pos::new(-5, at_wall.y));
    h.step();
    h.step();
    assert_eq!(h.line_of(1).stats().rejected_out_of_bounds, 1);
    // After the corrections, legal moves are accepted again.
    let accepted = h.line_of(1).stats().moves_accepted;
    h.clients
        .get_mut(&1)
        .unwrap()
        .replica
        .step_towards(start)
        .unwrap();
    h.step();
    h.step();
    assert_eq!(h.line_of(1).stats().moves_accepted, accepted + 1);
}

struct Filter;

impl ChatHook for Filter {
    fn check(&self, _from: &str, _scope: ChatScope, text: &str) -> ChatVerdict {
        if text.contains("buy gold") {
            ChatVerdict::Refuse("advertising is not allowed".into())
        } else {
            ChatVerdict::Replace(text.replace("darn", "****"))
        }
    }
}

fn chats(events: &[(PlayerId, WorldEvent)], player: PlayerId) -> Vec<String> {
    events
        .iter()
        .filter(|(p, _)| *p == player)
        .filter_map(|(_, e)| match e {
            WorldEvent::Chat { text, .. } => Some(text.clone()),
            WorldEvent::Refused { reason, .. } => Some(format!("refused: {reason}")),
            _ => None,
        })
        .collect()
}

#[test]
fn chat_scopes_limits_whispers_and_the_hook() {
    let mut h = Harness::new(vec![field_zone(0, 2)]);
    h.join(1, "ann", None);
    h.join(2, "bob", None);
    h.join(3, "cat", None); // line 2
    h.step();
    for key in h.world.directory.line_keys().collect::<Vec<_>>() {
        h.world
            .line_mut(key)
            .unwrap()
            .set_chat_hook(Arc::new(Filter));
    }
    let say = |scope, to: &str, text: &str| Command::Chat {
        scope,
        to: to.into(),
        text: text.into(),
    };
    h.command(1, say(ChatScope::Line, "", "hello line"));
    h.command(1, say(ChatScope::Zone, "", "hello zone, darn"));
    let mut events = h.step();
    events.extend(h.step());
    assert_eq!(chats(&events, 2), ["hello line", "hello zone, ****"]);
    assert_eq!(
        chats(&events, 3),
        ["hello zone, ****"],
        "zone chat crosses lines; line chat does not"
    );

    h.command(2, say(ChatScope::Whisper, "CAT", "psst"));
    h.command(2, say(ChatScope::Whisper, "nobody", "hello?"));
    h.command(2, say(ChatScope::Line, "", "buy gold now"));
    h.command(2, say(ChatScope::Line, "", "   "));
    let mut events = h.step();
    events.extend(h.step());
    assert_eq!(chats(&events, 3), ["psst"]);
    assert!(
        chats(&events, 1).is_empty(),
        "a whisper reaches no one else"
    );
    let bob = chats(&events, 2);
    assert!(
        bob.iter().any(|t| t == "psst"),
        "the sender sees the whisper it sent: {bob:?}"
    );
    assert!(
        bob.iter().any(|t| t.contains("nobody is not online")),
        "{bob:?}"
    );
    assert!(bob.iter().any(|t| t.contains("advertising")), "{bob:?}");
    assert!(bob.iter().any(|t| t.contains("empty")), "{bob:?}");

    // Rate: a burst of 5, then refusals.
    for i in 0..8 {
        h.command(1, say(ChatScope::Line, "", &format!("spam {i}")));
    }
    let events = h.step();
    let got = chats(&events, 2);
    assert!(got.len() <= 5, "{got:?}");
    let ann = chats(&events, 1);
    assert!(
        ann.iter().filter(|t| t.contains("too fast")).count() >= 3,
        "{ann:?}"
    );
    assert!(h.line_of(1).stats().chat_refused >= 5);
}

#[test]
fn travel_through_a_portal_and_by_command_saves_and_respawns() {
    let zones = hearth_world::parse_zone_file(hearth_world::DEFAULT_ZONES).unwrap();
    let mut h = Harness::new(zones);
    // Next to the meadow's portal to town at (46, 14).
    h.join(1, "traveller", Some(Pos::cell_centre(44, 14)));
    h.step();
    for _ in 0..30 {
        if h.clients
            .get_mut(&1)
            .unwrap()
            .replica
            .step_towards(Pos::cell_centre(46, 14))
            .is_none()
        {
            break;
        }
        h.step();
        if h.world
            .directory
            .zone_name(h.world.directory.line_of(1).unwrap().zone)
            == "town"
        {
            break;
        }
    }
    let events = (0..3).flat_map(|_| h.step()).collect::<Vec<_>>();
    let _ = events;
    assert_eq!(
        h.world
            .directory
            .zone_name(h.world.directory.line_of(1).unwrap().zone),
        "town"
    );
    assert_eq!(h.clients[&1].replica.entered.as_ref().unwrap().zone, "town");
    assert!(
        h.world.saves.iter().any(|s| s.zone == "town"),
        "saved on the zone change"
    );
    // Too soon after the portal: refused with the time to wait.
    h.command(
        1,
        Command::Travel {
            zone: "caves".into(),
        },
    );
    let events = (0..2).flat_map(|_| h.step()).collect::<Vec<_>>();
    assert!(
        chats(&events, 1).iter().any(|t| t.contains("wait")),
        "{:?}",
        chats(&events, 1)
    );
    for _ in 0..60 {
        h.step();
    }
    h.command(
        1,
        Command::Travel {
            zone: "caves".into(),
        },
    );
    h.step();
    h.step();
    assert_eq!(
        h.clients[&1].replica.entered.as_ref().unwrap().zone,
        "caves"
    );
    for _ in 0..60 {
        h.step();
    }
    h.command(
        1,
        Command::Travel {
            zone: "nowhere".into(),
        },
    );
    let events = (0..2).flat_map(|_| h.step()).collect::<Vec<_>>();
    assert!(chats(&events, 1).iter().any(|t| t.contains("no zone")));
}

#[test]
fn a_line_survives_serialization_and_continues_identically() {
    let zone = Arc::new(field_zone(50, 50));
    let mut line = Line::new(LineConfig {
        zone,
        number: 1,
        seed: 99,
        save_every_ticks: 20,
    });
    line.input(hearth_world::LineInput::Enter(Arrival {
        player: 5,
        account: Some(5),
        name: "p".into(),
        at: None,
        appearance: 0,
        values: NEW_PLAYER_VALUES,
        bytes_per_second: 20_000,
        epoch: 1,
        allowances: Allowances::default(),
    }));
    for _ in 0..30 {
        line.tick();
        line.drain_outputs().for_each(drop);
    }
    let saved = serde_json::to_string(&line).unwrap();
    let mut copy: Line = serde_json::from_str(&saved).unwrap();
    for _ in 0..50 {
        line.tick();
        copy.tick();
        let a: Vec<_> = line.drain_outputs().collect();
        let b: Vec<_> = copy.drain_outputs().collect();
        assert_eq!(a, b);
    }
    assert_eq!(
        serde_json::to_string(&line).unwrap(),
        serde_json::to_string(&copy).unwrap()
    );
}

#[test]
fn many_short_diagonal_moves_cover_no_more_than_the_legal_speed() {
    let mut h = Harness::new(vec![field_zone(0, 50)]);
    let start = Pos::cell_centre(50, 50);
    h.join(1, "sprinter", Some(start));
    h.step();
    h.step();
    // 200 ticks of 25 one-unit diagonal hops each (each really 1.41 units).
    let mut at = start;
    for _ in 0..200 {
        for _ in 0..25 {
            at = Pos::new(at.x + 1, at.y + 1);
            h.clients.get_mut(&1).unwrap().replica.moved_to(at);
        }
        h.step();
    }
    h.step();
    let travelled = h.pos(1).distance(start);
    let legal = 202 * h.line_of(1).zone().step_per_tick();
    assert!(
        travelled <= legal,
        "covered {travelled} units where {legal} are legal"
    );
}

#[test]
fn state_messages_of_another_stay_are_ignored() {
    let mut h = Harness::new(vec![field_zone(0, 50)]);
    let start = Pos::cell_centre(50, 50);
    h.join(1, "mover", Some(start));
    h.step();
    let stale = hearth_world::wire::ClientState {
        epoch: 7,
        ack_tick: 0,
        moves: vec![hearth_world::wire::Move {
            seq: 1,
            pos: Pos::new(start.x + 10, start.y),
        }],
    };
    h.world
        .receive(1, wire::STATE_CHANNEL, &stale.to_vec())
        .unwrap();
    h.step();
    assert_eq!(h.pos(1), start, "a move of another epoch is not applied");
    assert_eq!(h.line_of(1).stats().stale_states, 1);
}

#[test]
fn a_replacing_login_waits_for_the_old_session_and_starts_where_and_as_it_left() {
    let mut h = Harness::new(vec![field_zone(0, 50)]);
    h.join(1, "same", Some(Pos::cell_centre(10, 10)));
    h.step();
    let moved = Pos::cell_centre(12, 10);
    let line = h.world.directory.line_of(1).unwrap();
    h.world
        .line_mut(line)
        .unwrap()
        .input(hearth_world::LineInput::Teleport {
            player: 1,
            pos: moved,
        });
    let say = |text: &str| Command::Chat {
        scope: ChatScope::Line,
        to: String::new(),
        text: text.into(),
    };
    for _ in 0..5 {
        h.command(1, say("spending the burst"));
    }
    h.step();
    // The new session logs in before the old one has left the world.
    let waiting = h
        .world
        .join(Join {
            arrival: Arrival {
                player: 2,
                account: Some(1),
                name: "same".into(),
                at: Some(Pos::cell_centre(3, 3)),
                appearance: 1,
                values: NEW_PLAYER_VALUES,
                bytes_per_second: 100_000,
                epoch: 1,
                allowances: Allowances::default(),
            },
            zone: None,
            line: None,
            after: Some(1),
        })
        .unwrap();
    assert_eq!(waiting, None, "waits for the old session");
    h.clients.insert(
        2,
        Client {
            replica: Replica::default(),
            frames: Vec::new(),
            reliables: Vec::new(),
        },
    );
    h.world.leave(1);
    h.clients.remove(&1);
    for _ in 0..3 {
        h.step();
    }
    assert_eq!(
        h.pos(2),
        moved,
        "starts where the old session left, not at the stale saved place"
    );
    h.command(2, say("a new login, a new allowance?"));
    let events = h.step();
    let heard = chats(&events, 2);
    assert!(
        heard.len() == 1 && heard[0].contains("too fast"),
        "logging in again refills nothing: {heard:?}"
    );
}

#[test]
fn an_observer_sees_the_whole_line_exactly_and_hears_its_chat() {
    let zone = Arc::new(field_zone(30, 50));
    let mut line = Line::new(LineConfig {
        zone,
        number: 1,
        seed: 7,
        save_every_ticks: 0,
    });
    line.spawn_npcs(30);
    let arrive = |player: PlayerId, name: &str| {
        hearth_world::LineInput::Enter(Arrival {
            player,
            account: None,
            name: name.into(),
            at: None,
            appearance: 0,
            values: NEW_PLAYER_VALUES,
            bytes_per_second: 20_000,
            epoch: 1,
            allowances: Allowances::default(),
        })
    };
    line.input(arrive(1, "early"));
    for _ in 0..10 {
        line.tick();
        line.drain_outputs().for_each(drop);
    }
    // The observer starts mid-way: its first message is the whole line.
    let observer: PlayerId = u64::MAX;
    let mut replica = Replica::default();
    replica.apply_reliable(&line.observe(observer)).unwrap();
    line.input(arrive(2, "late"));
    let mut heard = false;
    for tick in 0..80 {
        if tick == 20 {
            line.input(hearth_world::LineInput::Deliver {
                to: None,
                item: Item::Chat {
                    scope: ChatScope::System,
                    from: String::new(),
                    to: String::new(),
                    text: "observed".into(),
                },
            });
        }
        if tick == 40 {
            line.input(hearth_world::LineInput::Release {
                player: 1,
                to: hearth_world::Destination::Away,
            });
        }
        line.tick();
        for output in line.drain_outputs() {
            match output {
                LineOutput::Observed {
                    observer: o,
                    channel,
                    bytes,
                } => {
                    assert_eq!(o, observer);
                    let events = if channel == wire::RELIABLE_CHANNEL {
                        replica.apply_reliable(&bytes).unwrap()
                    } else {
                        replica.apply_frame(&bytes).unwrap()
                    };
                    heard |= events
                        .iter()
                        .any(|e| matches!(e, WorldEvent::Chat { text, .. } if text == "observed"));
                }
                LineOutput::Send { player, .. } => {
                    assert_ne!(player, observer, "observers get no session messages")
                }
                _ => {}
            }
        }
        // After every tick the observer's copy is the line, actor for actor.
        let seen: BTreeMap<_, _> = replica
            .actors
            .iter()
            .map(|(id, a)| (*id, a.props.clone()))
            .collect();
        let truth: BTreeMap<_, _> = line
            .actors()
            .iter()
            .map(|a| (a.id, a.props.clone()))
            .collect();
        assert_eq!(seen, truth, "tick {tick}");
    }
    assert!(heard, "the line's chat reaches the observer");
    assert!(replica.find("late").is_some() && replica.find("early").is_none());
    line.unobserve(observer);
    line.tick();
    assert!(!line
        .drain_outputs()
        .any(|o| matches!(o, LineOutput::Observed { .. })));
}
