// The TypeScript client against vectors the Rust encoders generate
// (crates/hearth/tests/web_vectors.rs): every message decodes to the same
// value and encodes to the same bytes, a whole stream handshake with fixed
// keys derives the same keys and seals the same packets, and the world's
// joined carries the largest map a server can send and no larger.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  DecodeError,
  MAP_LEGEND,
  MAX_MAP,
  MAX_ZONE_SIDE,
  Reader,
  StreamCrypto,
  StreamOpener,
  Writer,
  decodeControl,
  ZoneMap,
  decodeFrame,
  decodeGameReliable,
  decodeStreamAnswer,
  encodeControl,
  encodeFrame,
  encodeGameReliable,
  fromHex,
  toHex,
} from "../src/index.js";
import { SCHEMA, newReplica } from "../../pages/world.generated.js";

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

/** The bounds vectors' map pattern (crates/hearth/tests/web_vectors.rs, pattern_map). */
function patternMap(width: number, height: number): string {
  let map = "";
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) map += MAP_LEGEND[(x * 7 + y * 3) % 5];
    map += "\n";
  }
  return map;
}

/** The world's message joining a line of a zone with `map`, as the bounds vectors write it (web_vectors.rs, joining). */
function joining(map: string): Uint8Array {
  const joined = { type: "joined" as const, version: SCHEMA.version, tickHz: 20, map, viewRadius: 24, speeds: [5, 2], entry: 1 };
  return encodeGameReliable(1, [joined], SCHEMA, () => undefined);
}

test("the client's bounds are the server's: a zone's side, a map's bytes", () => {
  assert.equal(MAX_ZONE_SIDE, vectors.bounds.maxZoneSide);
  assert.equal(MAX_MAP, vectors.bounds.maxMap);
});

test("the largest map a server can send encodes as in Rust and is accepted whole; a byte more is refused", () => {
  const largest = vectors.bounds.largestMap;
  const map = patternMap(largest.width, largest.height);
  const bytes = joining(map);
  assert.equal(bytes.length, largest.bytes);
  assert.equal(createHash("sha256").update(bytes).digest("hex"), largest.sha256);
  const replica = newReplica();
  replica.applyReliable(bytes);
  assert.equal(replica.map, map);
  const zone = new ZoneMap(replica.map);
  assert.deepEqual([zone.width, zone.height], [largest.width, largest.height]);
  // The far corner and a cell whose row and column differ: the pattern, not its transpose.
  assert.equal(zone.cell(1023, 1023), MAP_LEGEND[(1023 * 10) % 5]);
  assert.equal(zone.cell(1, 0), MAP_LEGEND[7 % 5]);
  assert.equal(zone.cell(0, 1), MAP_LEGEND[3 % 5]);
  assert.throws(
    () => newReplica().applyReliable(joining(`${map}.`)),
    (e: unknown) => e instanceof DecodeError && e.message === `map is ${MAX_MAP + 1} bytes, the limit is ${MAX_MAP}`,
  );
});

test("a map a cell too wide or too tall decodes as in Rust, and the client refuses it as the server would", () => {
  for (const vector of vectors.bounds.refusedMaps) {
    const bytes = fromHex(vector.hex);
    const { tick, ...joined } = vector.value;
    assert.deepEqual(decodeGameReliable(bytes, SCHEMA, () => undefined), { tick, items: [{ type: "joined", ...joined }] });
    assert.equal(toHex(joining(joined.map)), vector.hex);
    // The wire carries it; the map is what no zone can be, and says so.
    const replica = newReplica();
    replica.applyReliable(bytes);
    assert.throws(() => new ZoneMap(replica.map), /1 to 1024 cells on each side/, `${vector.width} by ${vector.height}`);
  }
});
