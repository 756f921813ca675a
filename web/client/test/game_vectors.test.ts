// The TypeScript game client against vectors the Rust side generates
// (examples/cards/tests/web_vectors.rs): schemas decode to the same version
// and re-encode to the same bytes, a message with a field of every type at
// its extremes decodes to the Rust values and re-encodes byte for byte, a
// card match replays into the replica state the Rust replica ended in, and
// what a client sends is the Rust bytes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { DecodeError, Writer, fromHex, toHex } from "../src/bytes.js";
import { Schema, Value, decodeSchema, encodeSchema } from "../src/game/schema.js";
import { FrameAcks, GameReplica, StateSender, decodeGameReliable, encodeGameAck, encodeGameFrame, encodeGameMessage, encodeGameMoves, encodeGameReliable } from "../src/game/replica.js";

declare const __WEB_DIR__: string;
const vectors = JSON.parse(readFileSync(`${__WEB_DIR__}/client/test/game_vectors.json`, "utf8"));

/** The vectors' JSON form of a value: integers as strings. */
function plain(value: Value): unknown {
  if (Array.isArray(value)) return value.map((v) => String(v));
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return value;
}

test("schemas decode to the Rust version and re-encode byte for byte", () => {
  for (const vector of vectors.schemas) {
    const schema = decodeSchema(fromHex(vector.hex));
    assert.equal(schema.game, vector.game);
    assert.equal(schema.version, vector.version);
    assert.equal(toHex(encodeSchema(schema)), vector.hex);
  }
});

test("a message of every type at its extremes decodes to the Rust values and re-encodes", () => {
  const schema = decodeSchema(fromHex(vectors.schemas[0].hex));
  for (const vector of vectors.every_type_messages) {
    const { tick, items } = decodeGameReliable(fromHex(vector.hex), schema, () => undefined);
    assert.equal(items.length, 1);
    const item = items[0]!;
    assert.equal(item.type, "message");
    assert.deepEqual(item.type === "message" && item.values.map(plain), vector.values);
    // 64-bit fields come back as bigints, small ones as numbers.
    if (item.type === "message") {
      assert.equal(typeof item.values[1], "number");
      assert.equal(typeof item.values[2], "bigint");
    }
    assert.equal(toHex(encodeGameReliable(tick, items, schema, () => undefined)), vector.hex);
  }
});

test("a card match replays into the Rust replica's state", () => {
  const schema = decodeSchema(fromHex(vectors.schemas[1].hex));
  const replica = new GameReplica(schema);
  for (const message of vectors.match.received) {
    const bytes = fromHex(message.hex);
    if (message.channel === 10) {
      const kindOf = (id: number) => replica.actors.get(id)?.kind;
      const { tick, items } = decodeGameReliable(bytes, schema, kindOf);
      assert.equal(toHex(encodeGameReliable(tick, items, schema, kindOf)), message.hex);
      replica.applyReliable(bytes);
    } else {
      replica.applyFrame(bytes);
    }
  }
  const actors = [...replica.actors.entries()].map(([id, a]) => ({ id, kind: a.kind, owned: a.owned, values: a.values.map(plain) }));
  assert.deepEqual(actors, vectors.match.actors);
  assert.equal(replica.tickHz, 10);
});

test("what a client sends is the Rust bytes, and a wrong schema is refused with a clear error", () => {
  const every = decodeSchema(fromHex(vectors.schemas[0].hex));
  assert.equal(toHex(encodeGameMessage(every, "poke", [2])), vectors.client.poke.hex);
  assert.equal(toHex(encodeGameAck(vectors.client.ack.tick, vectors.client.ack.earlier)), vectors.client.ack.hex);
  const moves = vectors.client.moves;
  assert.equal(toHex(encodeGameMoves(moves.ack, moves.earlier, moves.moves)), moves.hex);
  // When a client acknowledges, and which frames it names: as the Rust client does.
  const acks = new FrameAcks();
  acks.restart(vectors.client.ack_sequence.restart);
  const sent = vectors.client.ack_sequence.applied.map((tick: number) => {
    acks.applied(tick);
    if (!acks.due()) return null;
    const [newest, earlier] = acks.take();
    return toHex(encodeGameAck(newest, earlier));
  });
  assert.deepEqual(sent, vectors.client.ack_sequence.sent);
  // When a client sends its moves, and which: as the Rust client does.
  const state = new StateSender();
  const stateSent: (string | null)[] = [];
  for (const step of vectors.client.state_sequence.steps as string[]) {
    const [what, a, b] = step.split(" ");
    if (what === "restart") state.acks.restart(Number(a));
    else if (what === "applied") state.acks.applied(Number(a));
    else if (what === "taken") state.taken(Number(a));
    else if (what === "move") state.pushMove(Number(a), Number(b));
    else {
      const bytes = state.poll();
      stateSent.push(bytes ? toHex(bytes) : null);
    }
  }
  assert.deepEqual(stateSent, vectors.client.state_sequence.sent);
  assert.throws(() => encodeGameMessage(every, "all", []), /not a message to the server/);
  assert.throws(() => encodeGameMessage(every, "poke", [4]), /outside/);
  // The card match's first message says which schema the server runs.
  const wrong = new GameReplica(every);
  assert.throws(() => wrong.applyReliable(fromHex(vectors.match.received[0].hex)), /schema version/);
});

test("hostile bytes are decode errors, never crashes", () => {
  const schema = decodeSchema(fromHex(vectors.schemas[1].hex));
  let seed = 1;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256));
    const replica = new GameReplica(schema);
    for (const apply of [() => replica.applyReliable(bytes), () => replica.applyFrame(bytes), () => decodeSchema(bytes)]) {
      try {
        apply();
      } catch (error) {
        assert.ok(error instanceof Error, String(error));
      }
    }
  }
});

test("a respawn in one message is read with the new kind, and a set of a despawned actor is a DecodeError", () => {
  const schema = decodeSchema(fromHex(vectors.schemas[1].hex));
  const table = schema.kinds.findIndex((k) => k.name === "table");
  const seat = schema.kinds.findIndex((k) => k.name === "seat");
  const replica = new GameReplica(schema);
  replica.applyReliable(encodeGameReliable(1, [{ type: "spawn", id: 1, kind: table, owned: false, mask: 0n, values: [] }], schema, () => undefined));
  // Despawn 1, spawn 1 as a seat, then set bit 1 (the seat's hand): read as a list, not the table's int.
  const hostile = encodeGameReliable(
    2,
    [
      { type: "despawn", id: 1 },
      { type: "spawn", id: 1, kind: seat, owned: true, mask: 0n, values: [] },
      { type: "set", id: 1, mask: 2n, values: [[3, 4]] },
    ],
    schema,
    (id) => replica.actors.get(id)?.kind,
  );
  replica.applyReliable(hostile);
  assert.deepEqual(replica.value(1, "hand"), [3, 4]);
  // Spawn, despawn, then set the same id: refused as malformed, not a TypeError.
  const fresh = new GameReplica(schema);
  const setAfterDespawn = new Writer();
  setAfterDespawn.varint(3).varint(3);
  setAfterDespawn.u8(0x32).varint(5).varint(table).u8(0).u8(0);
  setAfterDespawn.u8(0x33).varint(5);
  setAfterDespawn.u8(0x34).varint(5).u8(0);
  assert.throws(() => fresh.applyReliable(setAfterDespawn.finish()), (e: unknown) => e instanceof DecodeError);
});

test("a schema the Rust side would refuse is refused here too, with the reason", () => {
  const good = decodeSchema(fromHex(vectors.schemas[1].hex));
  const tagVectors = JSON.parse(readFileSync(`${__WEB_DIR__}/client/test/tag_vectors.json`, "utf8"));
  const tag = decodeSchema(fromHex(tagVectors.schema));
  const variants: [string, (s: Schema) => void, RegExp][] = [
    ["a name with a capital", (s) => (s.kinds[0]!.name = "Seat"), /not a name/],
    ["a property declared twice", (s) => s.kinds[0]!.props.push({ ...s.kinds[0]!.props[0]! }), /declared twice/],
    ["a message to the server without a burst", (s) => (s.messages.find((m) => m.direction === "to_server")!.rate = { burst: 0, per_second: 1 }), /rate limit/],
    ["a range upside down", (s) => (s.kinds[0]!.props[0]!.ty = { type: "int", min: 5n, max: 1n }), /minimum/],
  ];
  for (const [what, spoil, reason] of variants) {
    const schema: Schema = structuredClone(good);
    spoil(schema);
    assert.throws(() => decodeSchema(encodeSchema(schema)), (e: unknown) => e instanceof DecodeError && reason.test(e.message), what);
  }
  const moving = tag.kinds.findIndex((k) => k.movement);
  assert.ok(moving >= 0, "tag has a moving kind");
  for (const spoil of [(s: Schema) => s.kinds[moving]!.props.reverse(), (s: Schema) => (s.kinds[moving]!.movement!.speed = 0)]) {
    const schema: Schema = structuredClone(tag);
    spoil(schema);
    assert.throws(() => decodeSchema(encodeSchema(schema)), (e: unknown) => e instanceof DecodeError && /moving kind/.test(e.message));
  }
});

test("a second joined (another line) leaves nothing of the last line, and the last line's late frames are ignored", () => {
  const schema = decodeSchema(fromHex(vectors.schemas[1].hex));
  const table = schema.kinds.findIndex((k) => k.name === "table");
  const joined = { type: "joined" as const, version: schema.version, tickHz: 20, map: "", viewRadius: 0, speeds: schema.kinds.map(() => 0), entry: 1 };
  const replica = new GameReplica(schema);
  const known = (id: number) => replica.actors.get(id)?.kind;
  replica.applyReliable(encodeGameReliable(5, [joined, { type: "spawn", id: 1, kind: table, owned: false, mask: 0n, values: [] }], schema, known));
  replica.applyReliable(encodeGameReliable(9, [{ type: "spawn", id: 2, kind: table, owned: false, mask: 0n, values: [] }], schema, known));
  while (replica.pollEvent()) {}
  // A frame of the next line (entry 2) overtakes its joined: ignored, not read with this line's actors.
  replica.applyFrame(encodeGameFrame({ tick: 13, inputAck: 0, corrected: false, entry: 2 }, [], schema, known));
  assert.equal(replica.newestFrame, 4);
  assert.equal(replica.pollEvent(), undefined);
  // The next line's first message spawns id 1 again: not a duplicate, since nothing of the last line stays.
  replica.applyReliable(encodeGameReliable(12, [{ ...joined, entry: 2 }, { type: "spawn", id: 1, kind: table, owned: false, mask: 0n, values: [] }], schema, known));
  assert.deepEqual([...replica.actors.keys()], [1]);
  const events = [];
  for (let e = replica.pollEvent(); e; e = replica.pollEvent()) events.push(e.type);
  assert.deepEqual(events, ["despawned", "despawned", "joined", "spawned"]);
  assert.equal(replica.newestFrame, 11, "frames of ticks before the joined one are the last line's");
  // The old line's late frame (entry 1) is ignored; the new line's is applied.
  replica.applyFrame(encodeGameFrame({ tick: 10, inputAck: 0, corrected: false, entry: 1 }, [], schema, known));
  assert.equal(replica.newestFrame, 11);
  replica.applyFrame(encodeGameFrame({ tick: 13, inputAck: 0, corrected: false, entry: 2 }, [], schema, known));
  assert.equal(replica.newestFrame, 13);
});
