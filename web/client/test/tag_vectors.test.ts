// The TypeScript replica with movement against vectors the Rust side
// generates (examples/tag/tests/web_vectors.rs): one player of a tag match
// receives frames with input acks and a correction, Control and the map;
// after each tick it makes the moves the Rust client made and must send the
// very bytes the Rust client sent; its replica ends in the Rust replica's
// state, with the same predicted position.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fromHex, toHex } from "../src/bytes.js";
import { Value, decodeSchema } from "../src/game/schema.js";
import { GameReplica, decodeGameFrame, decodeGameReliable, encodeGameFrame, encodeGameReliable } from "../src/game/replica.js";

declare const __WEB_DIR__: string;
const vectors = JSON.parse(readFileSync(`${__WEB_DIR__}/client/test/tag_vectors.json`, "utf8"));

function plain(value: Value): unknown {
  if (Array.isArray(value)) return value.map((v) => String(v));
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  return value;
}

test("a tag player's bytes replay, its moves are sent byte for byte, and it ends in the Rust state", () => {
  const schema = decodeSchema(fromHex(vectors.schema));
  const replica = new GameReplica(schema);
  let corrections = 0;
  let sentCount = 0;
  for (const tick of vectors.ticks) {
    for (const message of tick.received) {
      const bytes = fromHex(message.hex);
      const kindOf = (id: number) => replica.actors.get(id)?.kind;
      if (message.channel === 10) {
        const { tick: at, items } = decodeGameReliable(bytes, schema, kindOf);
        assert.equal(toHex(encodeGameReliable(at, items, schema, kindOf)), message.hex);
        replica.applyReliable(bytes);
      } else {
        const { header, updates, complete } = decodeGameFrame(bytes, schema, kindOf);
        if (complete) assert.equal(toHex(encodeGameFrame(header, updates, schema, kindOf)), message.hex);
        replica.applyFrame(bytes);
      }
    }
    for (let event = replica.pollEvent(); event; event = replica.pollEvent()) {
      if (event.type === "corrected") corrections++;
    }
    for (const [x, y] of tick.moves) replica.moveTo(x, y);
    const sent = replica.pollAck();
    assert.equal(sent === undefined ? null : toHex(sent), tick.sent);
    if (sent) sentCount++;
  }
  assert.ok(sentCount > 100, `sent ${sentCount} state messages`);
  assert.equal(corrections, vectors.corrections);
  assert.ok(corrections > 0);
  assert.ok(replica.map.includes("#"), "the map came with Joined");
  assert.equal(replica.controlled, vectors.controlled);
  assert.deepEqual(Object.values(replica.position(replica.controlled!)!), vectors.position);
  const actors = [...replica.actors.entries()].map(([id, a]) => ({ id, kind: a.kind, owned: a.owned, values: a.values.map(plain) }));
  assert.deepEqual(actors, vectors.actors);
});
