// Every decoder of the TypeScript client fed random and mutated bytes: each
// either decodes or throws a DecodeError (or, for the session, closes with
// a reason) — never another exception, never a hang. The Rust decoders
// have cargo-fuzz targets; these are their JavaScript counterparts, seeded
// so a failure repeats. The world's messages are seeded with what its
// server sends (written here with the game wire's own encoders).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  DecodeError,
  Reader,
  SCHEMA_CHANNEL,
  decodeControl,
  decodeFrame,
  decodeFrames,
  decodeGameFrame,
  decodeGameReliable,
  decodeStreamAnswer,
  encodeGameReliable,
  fromHex,
  readRecording,
} from "../src/index.js";
import { encodeGameFrame } from "../src/game/replica.js";
import { Npc, Player, SCHEMA, newReplica } from "../../pages/world.generated.js";

declare const __WEB_DIR__: string;
const vectors = JSON.parse(readFileSync(`${__WEB_DIR__}/client/test/vectors.json`, "utf8"));

/** SplitMix32: small, seeded, good enough to spread inputs. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x9e3779b9) | 0;
    let z = seed;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** The seeds' actors: the player's own (1) and an NPC (101). */
const PLAYER = 1;
const NPC = 101;
const kindOf = (id: number) => (id === PLAYER ? Player.KIND : id === NPC ? Npc.KIND : undefined);
const chat = SCHEMA.messages.findIndex((m) => m.name === "chat");

/** What the world's server sends a player entering a line, then a chat line and a property change, then a frame. */
const worldMessages = {
  entered: encodeGameReliable(
    1,
    [
      { type: "joined", version: SCHEMA.version, tickHz: 20, map: "#####\n#S.P#\n#####", viewRadius: 24, speeds: [5, 5], entry: 1 },
      { type: "control", id: PLAYER },
      { type: "spawn", id: PLAYER, kind: Player.KIND, owned: true, mask: 0b1111n, values: [150, 150, 0, "ann"] },
      { type: "spawn", id: NPC, kind: Npc.KIND, owned: false, mask: 0b1111n, values: [250, 150, 2, "npc-101"] },
    ],
    SCHEMA,
    kindOf,
  ),
  chat: encodeGameReliable(
    2,
    [
      { type: "message", index: chat, values: [1, "ann", "", "hello"] },
      { type: "set", id: NPC, mask: 0b100000n, values: [7] },
    ],
    SCHEMA,
    kindOf,
  ),
  frame: encodeGameFrame({ tick: 3, inputAck: 0, corrected: false, entry: 1 }, [{ id: PLAYER, mask: 0b11n, values: [160, 150] }], SCHEMA, kindOf),
};

/** An HRTHREC1 recording of `records` (the format of crates/hearth-replica/src/record.rs). */
function recording(records: { micros: number; channel: number; bytes: Uint8Array }[]): Uint8Array {
  const parts = [Buffer.from("HRTHREC1")];
  for (const record of records) {
    const head = Buffer.alloc(14);
    head.writeBigUInt64LE(BigInt(record.micros), 0);
    head.writeUInt16LE(record.channel, 8);
    head.writeUInt32LE(record.bytes.length, 10);
    parts.push(head, Buffer.from(record.bytes));
  }
  return new Uint8Array(Buffer.concat(parts));
}

const seeds: Uint8Array[] = [
  ...vectors.frames.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.control.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.streamAnswers.map((v: { hex: string }) => fromHex(v.hex)),
  ...Object.values(worldMessages),
  recording([
    { micros: 0, channel: SCHEMA_CHANNEL, bytes: new TextEncoder().encode(JSON.stringify({ game: SCHEMA.game, version: SCHEMA.version })) },
    { micros: 10, channel: 10, bytes: worldMessages.entered },
    { micros: 50_000, channel: 11, bytes: worldMessages.frame },
  ]),
];

function* inputs(count: number): Generator<Uint8Array> {
  const next = rng(20261201);
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const bytes = new Uint8Array(next() % 64);
      for (let j = 0; j < bytes.length; j++) bytes[j] = next() & 0xff;
      yield bytes;
    } else {
      // A valid message with a few bytes changed, cut or extended.
      const seed = seeds[next() % seeds.length]!;
      const bytes = new Uint8Array(seed.length + (next() % 3));
      bytes.set(seed);
      for (let k = 0; k < 1 + (next() % 4); k++) bytes[next() % bytes.length] = next() & 0xff;
      yield bytes.subarray(0, next() % (bytes.length + 1));
    }
  }
}

const decoders: [string, (b: Uint8Array) => unknown][] = [
  ["frames", decodeFrames],
  ["frame", (b) => decodeFrame(new Reader(b))],
  ["control", decodeControl],
  ["stream answer", decodeStreamAnswer],
  ["world reliable", (b) => decodeGameReliable(b, SCHEMA, kindOf)],
  ["world frame", (b) => decodeGameFrame(b, SCHEMA, kindOf)],
  ["recording", readRecording],
];

test("every decoder decodes or throws a DecodeError on 20,000 random and mutated inputs", () => {
  const outcomes = new Map<string, { ok: number; refused: number }>();
  for (const input of inputs(20_000)) {
    for (const [name, decode] of decoders) {
      const tally = outcomes.get(name) ?? { ok: 0, refused: 0 };
      outcomes.set(name, tally);
      try {
        decode(input);
        tally.ok += 1;
      } catch (e) {
        assert.ok(e instanceof DecodeError, `${name} threw ${(e as Error).name}: ${(e as Error).message} on ${Buffer.from(input).toString("hex")}`);
        tally.refused += 1;
      }
    }
  }
  // Mutations of valid messages must sometimes still decode, or the test exercises nothing.
  for (const [name, tally] of outcomes) assert.ok(tally.ok > 0 && tally.refused > 0, `${name}: ${JSON.stringify(tally)}`);
});

test("the world's replica fed arbitrary game messages stays consistent", () => {
  const replica = newReplica();
  replica.applyReliable(worldMessages.entered);
  for (const input of inputs(5_000)) {
    for (const apply of [replica.applyReliable, replica.applyFrame]) {
      try {
        apply.call(replica, input);
      } catch (e) {
        // A decode error, or a joined naming another schema version: what the page closes the session over.
        assert.ok(e instanceof DecodeError || /schema version/.test((e as Error).message), (e as Error).message);
      }
    }
    while (replica.pollEvent()) {}
  }
  for (const [id, actor] of replica.actors) {
    const kind = SCHEMA.kinds[actor.kind];
    assert.ok(kind, `actor ${id} is of kind ${actor.kind}, which the schema lacks`);
    assert.equal(actor.values.length, kind.props.length);
    const { x, y } = replica.serverPosition(id)!;
    assert.ok(Number.isInteger(x) && Number.isInteger(y), `actor ${id} at ${x},${y}`);
  }
});
