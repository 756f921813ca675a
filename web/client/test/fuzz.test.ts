// Every decoder of the TypeScript client fed random and mutated bytes: each
// either decodes or throws a DecodeError (or, for the session, closes with
// a reason) — never another exception, never a hang. The Rust decoders
// have cargo-fuzz targets; these are their JavaScript counterparts, seeded
// so a failure repeats.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { DecodeError, Reader, decodeControl, decodeFrame, decodeFrames, decodeStreamAnswer, fromHex, readRecording, world } from "../src/index.js";
import { Replica } from "../src/world/replica.js";

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

const seeds: Uint8Array[] = [
  ...vectors.frames.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.control.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.streamAnswers.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.world.commands.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.world.clientStates.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.world.reliable.map((v: { hex: string }) => fromHex(v.hex)),
  ...vectors.world.frames.map((v: { hex: string }) => fromHex(v.hex)),
  fromHex(vectors.world.recording.hex),
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
  ["command", world.decodeCommand],
  ["client state", world.decodeClientState],
  ["reliable", world.decodeReliable],
  ["world frame", world.decodeFrame],
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

test("a replica fed arbitrary world messages stays consistent", () => {
  const replica = new Replica();
  replica.applyReliable(fromHex(vectors.world.reliable[0].hex));
  for (const input of inputs(5_000)) {
    for (const apply of [replica.applyReliable, replica.applyFrame]) {
      try {
        apply.call(replica, input);
      } catch (e) {
        assert.ok(e instanceof DecodeError, (e as Error).message);
      }
    }
  }
  for (const actor of replica.actors.values()) assert.ok(Number.isInteger(actor.props.pos.x));
});
