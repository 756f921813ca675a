//! Every world decoder on arbitrary bytes: no panic, and whatever decodes
//! re-encodes to something that decodes the same. Then the same bytes as a
//! client's messages into a live line (the server side), as a server's
//! messages into a replica (the client side), and as a recording for
//! `hearth replay`: none may panic.

#![no_main]

use std::sync::Arc;

use hearth_world::wire::{ClientState, Command, Frame, Reliable};
use hearth_world::{decode_client, Arrival, Line, LineConfig, LineInput, Replica, Zone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = Command::decode(data) {
        assert_eq!(Command::decode(&command.to_vec()), Ok(command));
    }
    if let Ok(state) = ClientState::decode(data) {
        assert_eq!(ClientState::decode(&state.to_vec()), Ok(state));
    }
    if let Ok(message) = Reliable::decode(data) {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(Reliable::decode(&out), Ok(message));
    }
    if let Ok(frame) = Frame::decode(data) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert_eq!(Frame::decode(&out), Ok(frame));
    }

    let mut spec = Zone::open_field("fuzz", 24, 24).spec;
    spec.npcs = 3;
    let mut line = Line::new(LineConfig {
        zone: Arc::new(Zone::new(spec).expect("valid")),
        number: 1,
        seed: 1,
        save_every_ticks: 3,
    });
    for player in [1, 2] {
        line.input(LineInput::Enter(Arrival {
            player,
            account: Some(player as i64),
            name: format!("p{player}"),
            at: None,
            appearance: 0,
            values: [0; 4],
            bytes_per_second: 8_000,
            epoch: 1,
            allowances: Default::default(),
        }));
    }
    line.tick();
    for (i, chunk) in data.chunks(24).enumerate() {
        let channel = if i % 2 == 0 { 10 } else { 11 };
        if let Ok(message) = decode_client(channel, chunk) {
            line.input(message.into_input(1 + (i as u64 % 2)));
        }
        line.tick();
        line.drain_outputs().for_each(drop);
    }

    // A recording file (hearth replay's input) from arbitrary bytes, with
    // the magic in front so the records themselves get exercised.
    let mut recording = hearth_world::record::MAGIC.to_vec();
    recording.extend_from_slice(data);
    if let Ok(records) = hearth_world::record::read_all(&recording[..]) {
        assert!(records.windows(2).all(|w| w[0].micros <= w[1].micros));
    }

    let mut replica = Replica::default();
    for chunk in data.chunks(32) {
        let _ = replica.apply_reliable(chunk);
        let _ = replica.apply_frame(chunk);
        if let Some(step) = replica.step_towards(hearth_world::Pos::new(500, 500)) {
            let _ = step;
        }
        let _ = replica.state_message();
    }
});
