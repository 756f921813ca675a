// The TypeScript client against vectors the Rust encoders generate
// (crates/hearth/tests/web_vectors.rs): every message decodes to the same
// value and encodes to the same bytes, and a whole stream handshake with
// fixed keys derives the same keys and seals the same packets.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  Reader,
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
