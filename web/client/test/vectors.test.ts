// The TypeScript client against vectors the Rust encoders generate
// (crates/hearth/tests/web_vectors.rs): every message decodes to the same
// value and encodes to the same bytes, and a whole stream handshake with
// fixed keys derives the same keys and seals the same packets.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  Reader,
  Replica,
  StreamCrypto,
  StreamOpener,
  Writer,
  decodeControl,
  decodeFrame,
  decodeStreamAnswer,
  encodeControl,
  encodeFrame,
  fromHex,
  readRecording,
  toHex,
  world,
} from "../src/index.js";

declare const __WEB_DIR__: string;
const vectors = JSON.parse(readFileSync(`${__WEB_DIR__}/client/test/vectors.json`, "utf8"));

const BYTES = new Set(["payload", "bytes", "nonce", "resumeToken", "serverKey", "secret"]);

/** The JSON form of a vector value, in the TypeScript types: hex to bytes, big ids to bigint. */
function revive(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => revive(v));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v, k)]));
  }
  if (typeof value === "string" && BYTES.has(key)) return fromHex(value);
  if (typeof value === "string" && key === "sessionId") return BigInt(value);
  return value;
}

test("every frame decodes to the Rust value and encodes to the Rust bytes", () => {
  for (const vector of vectors.frames) {
    const expected = revive(vector.value) as Parameters<typeof encodeFrame>[1];
    const reader = new Reader(fromHex(vector.hex));
    const decoded = decodeFrame(reader);
    assert.equal(reader.remaining, 0, vector.hex);
    if (decoded.type === "bunch" && !decoded.bunch.open) delete (decoded.bunch as { open?: unknown }).open;
    assert.deepEqual(decoded, expected, vector.hex);
    const w = new Writer();
    encodeFrame(w, expected);
    assert.equal(toHex(w.finish()), vector.hex);
  }
});

test("every control message decodes and encodes as in Rust", () => {
  for (const vector of vectors.control) {
    const expected = revive(vector.value) as ReturnType<typeof decodeControl>;
    const decoded = decodeControl(fromHex(vector.hex));
    if (decoded.type === "welcome" && !decoded.ticket) delete (decoded as { ticket?: unknown }).ticket;
    assert.deepEqual(decoded, expected);
    assert.equal(toHex(encodeControl(expected)), vector.hex);
    // Truncated or extended, it is refused.
    assert.throws(() => decodeControl(fromHex(vector.hex).subarray(0, vector.hex.length / 2 - 1)));
    assert.throws(() => decodeControl(fromHex(vector.hex + "00")));
  }
});

test("stream handshake answers decode as in Rust", () => {
  for (const vector of vectors.streamAnswers) {
    assert.deepEqual(decodeStreamAnswer(fromHex(vector.hex)), vector.value);
  }
});

test("a stream handshake with fixed keys agrees with the Rust server, and packets seal identically", () => {
  for (const vector of vectors.handshakes) {
    const mode = revive(vector.mode) as ConstructorParameters<typeof StreamOpener>[0];
    const opener = new StreamOpener(mode, fromHex(vector.clientSecret));
    assert.equal(toHex(opener.hello()), vector.hello);
    const attach = vector.attachSecret ? fromHex(vector.attachSecret) : undefined;
    const serverKey = x25519.getPublicKey(fromHex(vector.serverStaticSecret));
    const opened = opener.finish(fromHex(vector.accept), serverKey, attach);
    assert.equal(opened.sessionId, BigInt(vector.sessionId));
    assert.equal(opened.serverReceived, BigInt(vector.received));
    assert.equal(toHex(opened.keys.clientToServer), vector.keys.c2s);
    assert.equal(toHex(opened.keys.serverToClient), vector.keys.s2c);
    assert.equal(toHex(opened.keys.confirm), vector.keys.confirm);
    for (const packet of vector.clientPackets) {
      assert.equal(toHex(opened.crypto.seal(fromHex(packet.plain))), packet.sealed);
    }
    for (const packet of vector.serverPackets) {
      assert.equal(toHex(opened.crypto.open(fromHex(packet.sealed))!), packet.plain);
    }
    // The server's half opens what the client sealed, once and in order.
    const server = StreamCrypto.forServer(opened.keys);
    const first = fromHex(vector.clientPackets[0].sealed);
    assert.equal(toHex(server.open(first)!), vector.clientPackets[0].plain);
    assert.equal(server.open(first), undefined, "a replayed packet must not open");
  }
});

test("a pinned key that differs, a tampered answer or a missing attach secret fail the handshake", () => {
  const vector = vectors.handshakes[1];
  const mode = revive(vector.mode) as ConstructorParameters<typeof StreamOpener>[0];
  const opener = new StreamOpener(mode, fromHex(vector.clientSecret));
  const attach = fromHex(vector.attachSecret);
  assert.throws(() => opener.finish(fromHex(vector.accept), new Uint8Array(32).fill(1), attach), /pinned/);
  const tampered = fromHex(vector.accept);
  tampered[tampered.length - 1]! ^= 1;
  assert.throws(() => opener.finish(tampered, undefined, attach), /did not prove/);
  assert.throws(() => opener.finish(fromHex(vector.accept), undefined, undefined), /did not prove/);
  assert.throws(() => opener.finish(fromHex(vectors.streamAnswers[0].hex)), /no longer has this session/);
  assert.throws(() => opener.finish(fromHex(vectors.streamAnswers[2].hex)), /upgrade required/);
});

test("world commands, client states, items and frames decode and encode as in Rust", () => {
  for (const vector of vectors.world.commands) {
    assert.deepEqual(world.decodeCommand(fromHex(vector.hex)), vector.value);
    assert.equal(toHex(world.encodeCommand(vector.value)), vector.hex);
  }
  for (const vector of vectors.world.clientStates) {
    assert.deepEqual(world.decodeClientState(fromHex(vector.hex)), vector.value);
    assert.equal(toHex(world.encodeClientState(vector.value)), vector.hex);
  }
  for (const vector of vectors.world.reliable) {
    assert.deepEqual(world.decodeReliable(fromHex(vector.hex)), vector.value);
    assert.equal(toHex(world.encodeReliable(vector.value)), vector.hex);
  }
  for (const vector of vectors.world.frames) {
    const decoded = world.decodeFrame(fromHex(vector.hex));
    // Only the masked properties are meaningful: compare those.
    decoded.updates.forEach((update, i) => {
      const expected = vector.value.updates[i];
      assert.equal(update.actor, expected.actor);
      assert.equal(update.mask, expected.mask);
      const onto = world.emptyProps();
      const wanted = world.emptyProps();
      world.applyProps(onto, update.mask, update.props);
      world.applyProps(wanted, update.mask, expected.props);
      assert.deepEqual(onto, wanted);
    });
    assert.equal(toHex(world.encodeFrame(vector.value)), vector.hex);
    for (let cut = 0; cut < vector.hex.length / 2; cut++) {
      assert.throws(() => world.decodeFrame(fromHex(vector.hex).subarray(0, cut)));
    }
  }
});

test("a recording written by Rust reads back record by record, and a cut one ends cleanly", () => {
  const file = fromHex(vectors.world.recording.hex);
  const records = readRecording(file);
  assert.deepEqual(
    records.map((r) => ({ micros: r.micros, channel: r.channel, hex: toHex(r.bytes) })),
    vectors.world.recording.records,
  );
  assert.equal(readRecording(file.subarray(0, file.length - 1)).length, 1);
  assert.throws(() => readRecording(new Uint8Array(20)), /not a Hearth recording/);
});

/** The bounds vectors' map pattern (crates/hearth/tests/web_vectors.rs, pattern_map). */
function patternMap(width: number, height: number): string {
  let map = "";
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) map += "#~.SP"[(x * 7 + y * 3) % 5];
    map += "\n";
  }
  return map;
}

test("the client's bounds are the server's: map sides, map bytes, line numbers", () => {
  assert.equal(world.MAX_ZONE_SIDE, vectors.bounds.maxZoneSide);
  assert.equal(world.MAX_MAP, vectors.bounds.maxMap);
  assert.equal(world.MAX_LINE, vectors.bounds.maxLine);
});

test("the largest map a server can send encodes as in Rust and is accepted whole", () => {
  const largest = vectors.bounds.largestMap;
  const message: world.Reliable = {
    tick: 1,
    items: [{ type: "entered", zone: "meadow", line: 1, actor: 9, epoch: 3, tickHz: 20, speed: 5, viewRadius: 24, map: patternMap(largest.width, largest.height) }],
  };
  const bytes = world.encodeReliable(message);
  assert.equal(bytes.length, largest.bytes);
  assert.equal(createHash("sha256").update(bytes).digest("hex"), largest.sha256);
  assert.deepEqual(world.decodeReliable(bytes), message);
  const replica = new Replica();
  replica.applyReliable(bytes);
  assert.equal(replica.map?.width, largest.width);
  assert.equal(replica.map?.height, largest.height);
  // The far corner and a cell whose row and column differ: the pattern, not its transpose.
  assert.equal(replica.map?.cell(1023, 1023), "#~.SP"[(1023 * 10) % 5]);
  assert.equal(replica.map?.cell(1, 0), "#~.SP"[7 % 5]);
  assert.equal(replica.map?.cell(0, 1), "#~.SP"[3 % 5]);
});

test("a map a cell too wide or too tall is refused with the reason, and the replica stays as it was", () => {
  for (const vector of vectors.bounds.refusedMaps) {
    const bytes = fromHex(vector.hex);
    assert.deepEqual(world.decodeReliable(bytes), vector.value);
    assert.equal(toHex(world.encodeReliable(vector.value)), vector.hex);
    const replica = new Replica();
    replica.applyReliable(fromHex(vectors.bounds.acceptedLines[0].hex));
    const before = replica.entered;
    assert.throws(() => replica.applyReliable(bytes), /1 to 1024 cells on each side/, `${vector.width} by ${vector.height}`);
    assert.equal(replica.entered, before);
  }
});

test("line numbers from 1 to the highest a server can open are accepted, others refused", () => {
  for (const vector of vectors.bounds.acceptedLines) {
    assert.deepEqual(world.decodeReliable(fromHex(vector.hex)), vector.value);
    assert.equal(toHex(world.encodeReliable(vector.value)), vector.hex);
  }
  for (const vector of vectors.bounds.refusedLines) {
    assert.equal(toHex(world.encodeReliable(vector.value)), vector.hex);
    assert.throws(() => world.decodeReliable(fromHex(vector.hex)), new RegExp(`line ${vector.line} is out of range: lines are numbered 1 to ${world.MAX_LINE}`));
  }
});
