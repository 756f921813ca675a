// The TypeScript client against a real `hearth serve` over real WebSockets:
// register and log in through the API, enter the world, see another player,
// chat, move with prediction, lose the connection and resume without losing
// a message. Needs the hearth binary (built by `cargo build -p hearth`, or
// HEARTH_BIN).

import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Connection, ConnectionClosed, WorldClient, connect, world } from "../src/index.js";

const BIN = process.env.HEARTH_BIN ?? new URL("../../target/debug/hearth", import.meta.url).pathname;
let server: ChildProcess;
let dataDir: string;
let web = "";

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, check: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function api(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`http://${web}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : {} };
}

async function account(name: string): Promise<string> {
  const password = "correct horse battery";
  const registered = await api("/api/register", { name, password });
  assert.equal(registered.status, 201, JSON.stringify(registered.json));
  const login = await api("/api/login", { name, password });
  assert.equal(login.status, 200);
  return login.json.access_token as string;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "hearth-live-"));
  const [game, webPort] = [await freePort(), await freePort()];
  web = `127.0.0.1:${webPort}`;
  // One small zone with one spawn point, so every player starts in view of the others.
  const rows = Array.from({ length: 10 }, (_, y) => `#${y === 5 ? ".........S.........." : ".".repeat(20)}#`);
  const map = ["#".repeat(22), ...rows, "#".repeat(22)].join("\n");
  writeFileSync(join(dataDir, "zones.toml"), `[[zone]]\nname = "arena"\nnpcs = 2\nmap = """\n${map}\n"""\n`);
  writeFileSync(join(dataDir, "hearth.toml"), `[world]\nzones = "${join(dataDir, "zones.toml")}"\n[accounts]\nregister_burst = 50\n`);
  const args = ["serve", "--config", join(dataDir, "hearth.toml"), "--port", String(game), "--web-port", String(webPort), "--data-dir", dataDir];
  server = spawn(BIN, args, {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  await until("the server's health check", () => {
    void fetch(`http://${web}/healthz`).then((r) => (healthy = r.ok), () => {});
    return healthy;
  }, 30_000);
});
let healthy = false;

after(() => {
  server?.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
});

async function player(name: string, url = `ws://${web}/ws`, options = "") {
  const token = await account(name);
  const connection = await connect(url, { credentials: { kind: "token", token }, options });
  const client = new WorldClient(connection);
  const events: world.Item[] = [];
  const chat: string[] = [];
  client.on((event) => {
    if (event.type === "chat") chat.push(`${event.from}: ${event.text}`);
  });
  await until(`${name} in the world`, () => client.replica.isReady);
  return { connection, client, chat, events };
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

/** A TCP relay in front of the web port that can cut every connection, as a network failure would. */
async function cuttableRelay(): Promise<{ url: string; cut: (blocked: boolean) => void; close: () => void }> {
  const sockets = new Set<Socket>();
  const [host, port] = web.split(":");
  let blocked = false;
  const relay = createServer((inbound) => {
    if (blocked) return inbound.resetAndDestroy();
    const outbound = new Socket().connect(Number(port), host!);
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => [inbound, outbound].forEach((s) => s.destroy());
    inbound.on("error", end).on("close", end);
    outbound.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
  const relayPort = (relay.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${relayPort}/ws`,
    /** Resets every connection; while `blocked`, new ones are reset too. */
    cut: (block: boolean) => {
      blocked = block;
      sockets.forEach((s) => s.resetAndDestroy());
    },
    close: () => relay.close(),
  };
}

test("a cut connection resumes on a new WebSocket and no chat message is lost or repeated", async () => {
  const relay = await cuttableRelay();
  const cara = await player("cara", relay.url);
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
    connect(`ws://${web}/ws`, { credentials: { kind: "token", token: "not-a-token" } }),
    (e: unknown) => e instanceof ConnectionClosed && e.code === 4,
  );
  const token = await account("eve");
  await assert.rejects(
    connect(`ws://${web}/ws`, { credentials: { kind: "token", token }, pinnedKey: new Uint8Array(32).fill(7) }),
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
