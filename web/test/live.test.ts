// The TypeScript client against a real `hearth serve` over real WebSockets,
// playing the built-in world on the game API with its generated bindings:
// register and log in through the API, enter the world, see another player,
// chat, move with prediction, lose the connection and resume without losing
// a message; the admin API's gate (401, 403, 200); and a whole line
// recorded, read back and replayed into the world's replica.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ConnectionClosed, RELIABLE_CHANNEL, SCHEMA_CHANNEL, STATE_CHANNEL, connect, readRecording } from "../client/src/index.js";
import { Npc, Player, VERSION, decodeMessage, newReplica } from "../pages/world.generated.js";
import { ARENA_MAP, Server, account, api, cuttableRelay, startServer, until, worldPlayer } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer(["root"]);
});
after(() => server.stop());

test("two TypeScript players see each other, chat and move over real WebSockets", async () => {
  const ann = await worldPlayer(server, "ann");
  const ben = await worldPlayer(server, "ben");
  assert.equal(ann.zone, "arena");
  // Each sees the other: the arena has one spawn point.
  await until("ann sees ben", () => ann.find("ben"));
  await until("ben sees ann", () => ben.find("ann"));
  ann.say("zone", "hello from TypeScript");
  await until("ben hears ann", () => ben.chat.includes("ann: hello from TypeScript"));
  // Move two cells right: the prediction walks, the server confirms, ben sees it.
  const start = ann.position!;
  const goal = { x: start.x + 200, y: start.y };
  await ann.walkTo(goal);
  await until("ben sees ann arrive", () => {
    const seen = ben.find("ann");
    return seen && seen.x === goal.x && seen.y === goal.y;
  });
  assert.equal(ann.corrections, 0, "a legal walk is never corrected");
  // A whisper to nobody is refused by the server, with its reason.
  ann.say("whisper", "hi", "nobody-here");
  await until("the refusal", () => ann.refused.find((r) => r.includes("not online")));
  ann.connection.close();
  ben.connection.close();
});

test("a cut connection resumes on a new WebSocket and no chat message is lost or repeated", async () => {
  const relay = await cuttableRelay(server.web);
  const cara = await worldPlayer(server, "cara", { url: `ws://127.0.0.1:${relay.port}/ws` });
  const dan = await worldPlayer(server, "dan");
  const states: string[] = [];
  cara.connection.on("state", (s) => states.push(s));
  relay.cut(true);
  await until("cara notices", () => cara.connection.state === "reconnecting");
  // While cara is away, dan talks; cara talks too (queued, sent after the resume).
  for (let i = 0; i < 3; i++) dan.say("zone", `while away ${i}`);
  cara.say("zone", "typed while offline");
  await new Promise((r) => setTimeout(r, 500));
  relay.cut(false);
  await until("cara resumes", () => cara.connection.state === "resumed", 15_000);
  await until("cara hears everything", () => cara.chat.filter((c) => c.startsWith("dan: while away")).length === 3);
  await until("dan hears cara", () => dan.chat.includes("cara: typed while offline"));
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    cara.chat.filter((c) => c.startsWith("dan: while away")),
    ["dan: while away 0", "dan: while away 1", "dan: while away 2"],
    "each once, in order",
  );
  assert.deepEqual(states, ["reconnecting", "resumed"]);
  assert.equal(cara.connection.stats.resumes, 1);
  cara.connection.close();
  dan.connection.close();
  relay.close();
});

test("a wrong token is refused with the server's reason, and a wrong pinned key never logs in", async () => {
  await assert.rejects(
    connect(`ws://${server.web}/ws`, { credentials: { kind: "token", token: "not-a-token" } }),
    (e: unknown) => e instanceof ConnectionClosed && e.code === 4,
  );
  const token = await account(server.web, "eve");
  await assert.rejects(
    connect(`ws://${server.web}/ws`, { credentials: { kind: "token", token }, pinnedKey: new Uint8Array(32).fill(7) }),
    /pinned/,
  );
});

test("the server kicks a player who sends the world a message that does not decode", async () => {
  const fay = await worldPlayer(server, "fay");
  const closed = new Promise<{ code: number; reason: string }>((r) => fay.connection.on("closed", r));
  fay.connection.send(RELIABLE_CHANNEL, new Uint8Array([0xff, 0xff]));
  const why = await closed;
  assert.equal(why.code, 3, why.reason);
  assert.match(why.reason, /a game message did not decode/);
  assert.equal(fay.connection.state, "closed");
});

test("the admin API wants an administrator's token: none gets 401, a player's 403", async () => {
  assert.equal((await api(server.web, "/api/admin/overview", undefined)).status, 401);
  const player = await account(server.web, "gus");
  const refused = await api(server.web, "/api/admin/overview", undefined, player);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error, "forbidden");
  assert.equal((await api(server.web, "/api/admin/kick", { name: "gus" }, player)).status, 403);
  assert.equal((await api(server.web, "/api/admin/lock", { name: "gus", locked: true }, player)).status, 403);
  const admin = await account(server.web, "root", false);
  const overview = await api(server.web, "/api/admin/overview", undefined, admin);
  assert.equal(overview.status, 200);
  assert.ok((overview.json.world as { lines: unknown[] }).lines.length >= 1, JSON.stringify(overview.json.world));
  // The game handler runs inline: its queue stays empty.
  assert.equal((overview.json.handler_queue as { waiting_events: number }).waiting_events, 0);
});

test("an administrator locks an account: its player is kicked, its tokens die, its password no longer logs in", async () => {
  const hal = await worldPlayer(server, "hal");
  const admin = await account(server.web, "root", false);
  const closed = new Promise<{ code: number; reason: string }>((r) => hal.connection.on("closed", r));
  assert.equal((await api(server.web, "/api/admin/lock", { name: "hal", locked: true }, admin)).status, 204);
  const why = await closed;
  assert.equal(why.code, 1);
  assert.match(why.reason, /locked by an administrator/);
  const login = await api(server.web, "/api/login", { name: "hal", password: "correct horse battery" });
  assert.equal(login.status, 403);
  assert.equal(login.json.error, "disabled");
  assert.equal((await api(server.web, "/api/admin/lock", { name: "hal", locked: false }, admin)).status, 204);
  await account(server.web, "hal", false);
});

test("a whole line is recorded as an observer sees it, reads back record by record, and replays to every actor of the line", async () => {
  const jay = await worldPlayer(server, "jay");
  const admin = await account(server.web, "root", false);
  assert.equal((await api(server.web, "/api/admin/record", { zone: "arena", line: 9, seconds: 2 }, admin)).status, 404);
  assert.equal((await api(server.web, "/api/admin/record", { name: "jay", zone: "arena", seconds: 2 }, admin)).status, 400);
  const started = await api(server.web, "/api/admin/record", { zone: "arena", line: 1, seconds: 2 }, admin);
  assert.equal(started.status, 201, JSON.stringify(started.json));
  assert.match(started.json.file as string, /^arena-line1-\d+\.hrec$/);
  jay.say("line", "for the record");
  await new Promise((r) => setTimeout(r, 2600));
  const url = `http://${server.web}/api/admin/recordings/${started.json.file}`;
  const response = await fetch(url, { headers: { authorization: `Bearer ${admin}` } });
  assert.equal(response.status, 200);
  const file = new Uint8Array(await response.arrayBuffer());
  const records = readRecording(file);
  // It starts with the world's schema, as /api/schema serves it.
  assert.equal(records[0]?.channel, SCHEMA_CHANNEL);
  const schema = JSON.parse(new TextDecoder().decode(records[0]!.bytes)) as { game: string; version: string };
  assert.deepEqual([schema.game, schema.version], ["world", VERSION]);
  // A recording cut short (a crash while writing) ends cleanly at its last whole record; anything else is refused.
  assert.equal(readRecording(file.subarray(0, file.length - 1)).length, records.length - 1);
  assert.throws(() => readRecording(new Uint8Array(20)), /not a Hearth recording/);

  const replica = newReplica();
  const chat: string[] = [];
  for (const record of records.slice(1)) {
    if (record.channel === RELIABLE_CHANNEL) replica.applyReliable(record.bytes);
    else if (record.channel === STATE_CHANNEL) replica.applyFrame(record.bytes);
    for (let event = replica.pollEvent(); event; event = replica.pollEvent()) {
      const message = decodeMessage(event);
      if (message?.type === "chat") chat.push(`${message.from}: ${message.text}`);
    }
  }
  // An observer is told no zone (it never entered one): the map says which it is.
  assert.equal(replica.map.trimEnd(), ARENA_MAP);
  assert.ok(chat.includes("jay: for the record"), JSON.stringify(chat));
  // The observer sees the whole line, and steers nobody: the arena's two NPCs and its players, jay among them.
  assert.equal(replica.controlled, undefined);
  const players = Player.all(replica).map((p) => p.name);
  const npcs = Npc.all(replica).map((n) => n.name);
  assert.ok(players.includes("jay"), JSON.stringify(players));
  assert.equal(npcs.length, 2, JSON.stringify(npcs));
  // Administrators delete recordings; players cannot.
  const kit = await account(server.web, "kit");
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${kit}` } })).status, 403);
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${admin}` } })).status, 204);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${admin}` } })).status, 404);
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${admin}` } })).status, 404);
  jay.connection.close();
});
