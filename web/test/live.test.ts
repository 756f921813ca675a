// The TypeScript client against a real `hearth serve` over real WebSockets:
// register and log in through the API, enter the world, see another player,
// chat, move with prediction, lose the connection and resume without losing
// a message; and the admin API's gate (401, 403, 200).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Connection, ConnectionClosed, WorldClient, connect, world } from "../client/src/index.js";
import { Server, account, api, cuttableRelay, startServer, until } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer(["root"]);
});
after(() => server.stop());

async function player(name: string, url = `ws://${server.web}/ws`) {
  const token = await account(server.web, name);
  const connection = await connect(url, { credentials: { kind: "token", token } });
  const client = new WorldClient(connection);
  const chat: string[] = [];
  client.on((event) => {
    if (event.type === "chat") chat.push(`${event.from}: ${event.text}`);
  });
  await until(`${name} in the world`, () => client.replica.isReady);
  return { connection, client, chat };
}

test("two TypeScript players see each other, chat and move over real WebSockets", async () => {
  const ann = await player("ann");
  const ben = await player("ben");
  assert.equal(ann.client.replica.entered?.zone, "arena");
  // Each sees the other: the arena has one spawn point.
  await until("ann sees ben", () => ann.client.replica.find("ben"));
  await until("ben sees ann", () => ben.client.replica.find("ann"));
  ann.client.say("hello from TypeScript");
  await until("ben hears ann", () => ben.chat.includes("ann: hello from TypeScript"));
  // Move two cells right: the prediction walks, the server confirms, ben sees it.
  const start = ann.client.replica.position!;
  const goal = { x: start.x + 200, y: start.y };
  ann.client.moveTo(goal);
  await until("ann arrives", () => {
    const seen = ben.client.replica.find("ann");
    return seen && seen.props.pos.x === goal.x && seen.props.pos.y === goal.y;
  });
  assert.equal(ann.client.replica.corrections, 0, "a legal walk is never corrected");
  // A whisper to nobody is refused by the server, with its reason.
  const refusals: string[] = [];
  ann.client.on((e) => void (e.type === "refused" && refusals.push(e.reason)));
  ann.client.whisper("nobody-here", "hi");
  await until("the refusal", () => refusals.find((r) => r.includes("not online")));
  ann.connection.close();
  ben.connection.close();
});

test("a cut connection resumes on a new WebSocket and no chat message is lost or repeated", async () => {
  const relay = await cuttableRelay(server.web);
  const cara = await player("cara", `ws://127.0.0.1:${relay.port}/ws`);
  const dan = await player("dan");
  const states: string[] = [];
  cara.connection.on("state", (s) => states.push(s));
  relay.cut(true);
  await until("cara notices", () => cara.connection.state === "reconnecting");
  // While cara is away, dan talks; cara talks too (queued, sent after the resume).
  for (let i = 0; i < 3; i++) dan.client.say(`while away ${i}`);
  cara.client.say("typed while offline");
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

test("the server kicks a player who floods the world with undecodable messages", async () => {
  const fay = await player("fay");
  const closed = new Promise<{ code: number; reason: string }>((r) => fay.connection.on("closed", r));
  fay.connection.send(world.RELIABLE_CHANNEL, new Uint8Array([0xff, 0xff]));
  const why = await closed;
  assert.equal(why.code, 3, why.reason);
  assert.equal((fay.connection as Connection).state, "closed");
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
  assert.ok((overview.json.world as { lines: unknown[] }).lines.length >= 1);
  // The game handler runs inline: its queue stays empty.
  assert.equal((overview.json.handler_queue as { waiting_events: number }).waiting_events, 0);
});

test("an administrator locks an account: its player is kicked, its tokens die, its password no longer logs in", async () => {
  const hal = await player("hal");
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

test("a whole line is recorded as an observer sees it, and replays to every actor of the line", async () => {
  const { readRecording, Replica } = await import("../client/src/index.js");
  const jay = await player("jay");
  const admin = await account(server.web, "root", false);
  assert.equal((await api(server.web, "/api/admin/record", { zone: "arena", line: 9, seconds: 2 }, admin)).status, 404);
  assert.equal((await api(server.web, "/api/admin/record", { name: "jay", zone: "arena", seconds: 2 }, admin)).status, 400);
  const started = await api(server.web, "/api/admin/record", { zone: "arena", line: 1, seconds: 2 }, admin);
  assert.equal(started.status, 201, JSON.stringify(started.json));
  assert.match(started.json.file as string, /^arena-line1-\d+\.hrec$/);
  jay.client.say("for the record");
  await new Promise((r) => setTimeout(r, 2600));
  const response = await fetch(`http://${server.web}/api/admin/recordings/${started.json.file}`, { headers: { authorization: `Bearer ${admin}` } });
  assert.equal(response.status, 200);
  const records = readRecording(new Uint8Array(await response.arrayBuffer()));
  const replica = new Replica();
  const chat: string[] = [];
  for (const record of records) {
    const events = record.channel === world.RELIABLE_CHANNEL ? replica.applyReliable(record.bytes) : replica.applyFrame(record.bytes);
    for (const e of events) if (e.type === "chat") chat.push(`${e.from}: ${e.text}`);
  }
  assert.equal(replica.entered?.zone, "arena");
  assert.ok(chat.includes("jay: for the record"), JSON.stringify(chat));
  // The observer sees the whole line: the arena's two NPCs and its players, jay among them.
  const names = [...replica.actors.values()].map((a) => a.props.name);
  assert.ok(names.includes("jay") && names.filter((n) => n.startsWith("npc")).length === 2, JSON.stringify(names));
  // Administrators delete recordings; players cannot.
  const url = `http://${server.web}/api/admin/recordings/${started.json.file}`;
  const gus = await account(server.web, "kit");
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${gus}` } })).status, 403);
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${admin}` } })).status, 204);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${admin}` } })).status, 404);
  assert.equal((await fetch(url, { method: "DELETE", headers: { authorization: `Bearer ${admin}` } })).status, 404);
  jay.connection.close();
});
