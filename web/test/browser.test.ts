// The browser as a first-class player, in real headless Chromium (Debian's
// package, driven by playwright-core): two browser players and one Rust
// `hearth client` log in to a real `hearth serve`, see each other move and
// chat; one browser's connection is cut and it resumes; an administrator
// kicks a player from /admin and that browser shows why; a server's largest
// map draws at once and a line number out of range is refused. Screenshots
// go to web/test-results/.

import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { toHex, world } from "../client/src/index.js";
import { BIN, PASSWORD, Server, WEB_DIR, account, api, cuttableRelay, startServer, until } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RESULTS = join(WEB_DIR, "test-results");
let server: Server;
let browser: Browser;
const rust: ChildProcess[] = [];

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  server = await startServer(["root"]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  for (const child of rust) child.kill("SIGKILL");
  server?.stop();
});

/** Opens the game page (optionally through `origin`), registers `name` and waits until it is in the world. */
async function browserPlayer(name: string, origin = `http://${server.web}`): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error: ${e.message}`));
  const started = Date.now();
  await page.goto(`${origin}/`);
  await page.getByTestId("name").fill(name);
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => (window as any).hearth?.world?.replica?.isReady === true, null, { timeout: 15_000 });
  await page.waitForFunction(() => document.getElementById("state")?.textContent === "online");
  console.log(`${name}: page load, register, login and first world frame in ${Date.now() - started} ms`);
  return page;
}

/** What `page`'s replica knows of the actor named `name`. */
async function seen(page: Page, name: string): Promise<{ x: number; y: number } | undefined> {
  return page.evaluate((who) => (window as any).hearth.world.replica.find(who)?.props.pos, name);
}

test("two browsers and a Rust client play together; a cut browser resumes; an administrator kicks from /admin", async () => {
  const relay = await cuttableRelay(server.web);
  const ann = await browserPlayer("ann", `http://127.0.0.1:${relay.port}`);
  const ben = await browserPlayer("ben");

  // The Rust client: registers, enters the arena, says hello and watches.
  const carl = spawn(
    BIN,
    ["client", `hearth://127.0.0.1:${server.game}`, "--name", "carl", "--register", "--web", `http://${server.web}`, "--say", "hello from rust", "--watch", "60"],
    { env: { ...process.env, HEARTH_PASSWORD: PASSWORD }, stdio: ["ignore", "pipe", "ignore"] },
  );
  rust.push(carl);
  let carlSaw = "";
  carl.stdout!.on("data", (chunk) => (carlSaw += chunk));

  // Everyone sees everyone.
  for (const page of [ann, ben]) {
    for (const other of ["ann", "ben", "carl"]) await until(`a browser sees ${other}`, () => seen(page, other));
  }
  await until("ben hears carl", () => ben.getByTestId("chat-log").textContent().then((t) => t?.includes("carl: hello from rust")));

  // ann walks right with the keyboard; ben sees her move.
  const before = (await seen(ben, "ann"))!;
  await ann.getByTestId("world").focus();
  await ann.keyboard.down("ArrowRight");
  await until("ben sees ann move", async () => ((await seen(ben, "ann"))?.x ?? 0) > before.x + 150);
  await ann.keyboard.up("ArrowRight");

  // ann chats from the page; ben and carl read it.
  await ann.getByTestId("chat-input").fill("hi from chromium");
  await ann.getByTestId("chat-send").click();
  await until("ben reads ann", () => ben.getByTestId("chat-log").textContent().then((t) => t?.includes("ann: hi from chromium")));
  await until("carl reads ann", () => carlSaw.includes("hi from chromium"));
  assert.match(carlSaw, /ann/);
  await ann.screenshot({ path: join(RESULTS, "game.png") });

  // ann's connection is cut: the page says so, then resumes on its own.
  relay.cut(true);
  await ann.waitForFunction(() => document.getElementById("state")?.textContent === "reconnecting", null, { timeout: 15_000 });
  await ben.getByTestId("chat-input").fill("said while ann was away");
  await ben.getByTestId("chat-send").click();
  relay.cut(false);
  await ann.waitForFunction(() => document.getElementById("state")?.textContent === "resumed", null, { timeout: 15_000 });
  await until("ann gets what was said while away", () => ann.getByTestId("chat-log").textContent().then((t) => t?.includes("ben: said while ann was away")));
  await ann.getByTestId("chat-input").fill("back again");
  await ann.getByTestId("chat-send").click();
  await until("ben reads ann after the resume", () => ben.getByTestId("chat-log").textContent().then((t) => t?.includes("ann: back again")));

  // The administrator: dashboard, announcement, kick.
  const admin = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  await admin.goto(`http://${server.web}/admin`);
  await admin.getByTestId("admin-name").fill("root");
  await admin.getByTestId("admin-password").fill(PASSWORD);
  await admin.getByTestId("admin-login").click();
  await until("the dashboard counts the sessions", () =>
    admin.getByTestId("admin-sessions").textContent().then((t) => /sessions live\s*3/.test(t ?? "")),
  );
  // The gate's UDP counters and handler queues are on the dashboard too: the
  // Rust client's UDP link has carried datagrams both ways, and nothing is
  // stuck in a handler queue.
  await until("the dashboard shows UDP traffic", () =>
    admin.getByTestId("admin-sessions").textContent().then((t) => /UDP datagrams in \/ out\s*[1-9]\d* \/ [1-9]\d*/.test(t ?? "")),
  );
  assert.match((await admin.getByTestId("admin-sessions").textContent()) ?? "", /handler queues: events waiting \(bytes\)\s*0 \(0 B\)/);
  await admin.getByTestId("announce-text").fill("maintenance at noon");
  await admin.getByTestId("announce").click();
  await until("ann reads the announcement", () => ann.getByTestId("chat-log").textContent().then((t) => t?.includes("[system] maintenance at noon")));
  await admin.getByTestId("kick-name").fill("ben");
  await admin.getByTestId("kick-reason").fill("testing the dashboard");
  await admin.getByTestId("kick").click();
  await ben.waitForFunction(() => document.getElementById("state")?.textContent === "closed", null, { timeout: 10_000 });
  assert.equal(await ben.locator("#why").textContent(), "kicked by an administrator: testing the dashboard");
  await new Promise((r) => setTimeout(r, 2500)); // a few chart points
  await admin.screenshot({ path: join(RESULTS, "admin.png"), fullPage: true });
  relay.close();
});

test("a player's login does not open the dashboard", async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`http://${server.web}/`);
  await page.getByTestId("name").fill("dora");
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => document.getElementById("state")?.textContent === "online", null, { timeout: 15_000 });
  await page.goto(`http://${server.web}/admin`);
  await page.getByTestId("admin-name").fill("dora");
  await page.getByTestId("admin-password").fill(PASSWORD);
  await page.getByTestId("admin-login").click();
  await until("the refusal", () => page.getByTestId("admin-error").textContent().then((t) => t?.includes("not an administrator")));
  assert.equal(await page.locator("#dashboard").isHidden(), true);
});

test("with permessage-deflate allowed, Chromium negotiates it and plays through it", async () => {
  const deflating = await startServer([], { HEARTH_WEBSOCKET_DEFLATE: "true" });
  try {
    const eve = await browserPlayer("eve", `http://${deflating.web}`);
    const fin = await browserPlayer("fin", `http://${deflating.web}`);
    await until("the panel shows the extension", () => eve.locator("#transport").textContent().then((t) => t?.includes("permessage-deflate")));
    // A long line: the WebSocket messages carrying it are big enough to be compressed.
    const long = "compressed ".repeat(20).trim();
    await eve.getByTestId("chat-input").fill(long);
    await eve.getByTestId("chat-send").click();
    await until("fin reads eve", () => fin.getByTestId("chat-log").textContent().then((t) => t?.includes(`eve: ${long}`)));
  } finally {
    deflating.stop();
  }
});

test("the server records a player; the recording downloads for administrators only and replays in the browser", async () => {
  const { WorldClient, connect } = await import("../client/src/index.js");
  const enter = async (name: string) => {
    const token = await account(server.web, name);
    const client = new WorldClient(await connect(`ws://${server.web}/ws`, { credentials: { kind: "token", token } }));
    await until(`${name} in the world`, () => client.replica.isReady);
    return client;
  };
  const gus = await enter("gus");
  const hana = await enter("hana");
  const admin = await account(server.web, "root", false);
  const started = await api(server.web, "/api/admin/record", { name: "hana", seconds: 3 }, admin);
  assert.equal(started.status, 201, JSON.stringify(started.json));
  const file = started.json.file as string;
  assert.match(file, /^hana-\d+\.hrec$/);
  assert.equal((await api(server.web, "/api/admin/record", { name: "hana", seconds: 3 }, admin)).status, 409, "one recording per player at a time");
  await new Promise((r) => setTimeout(r, 500));
  gus.say("this line is recorded");
  gus.moveTo({ x: gus.replica.position!.x + 300, y: gus.replica.position!.y });
  await new Promise((r) => setTimeout(r, 3200));

  const listed = await api(server.web, "/api/admin/recordings", undefined, admin);
  assert.ok((listed.json.files as { file: string }[]).some((f) => f.file === file));
  const cost = listed.json.cost as { messages: number; recorded_player_seconds: number };
  assert.ok(cost.messages > 10 && cost.recorded_player_seconds >= 2.9, JSON.stringify(cost));
  const player = await account(server.web, "ivy");
  const forbidden = await fetch(`http://${server.web}/api/admin/recordings/${file}`, { headers: { authorization: `Bearer ${player}` } });
  assert.equal(forbidden.status, 403);
  for (const sneaky of ["..%2Fhearth.db", "hearth.db", "..%2F..%2Fetc%2Fpasswd.hrec", "x.hrec"]) {
    const response = await fetch(`http://${server.web}/api/admin/recordings/${sneaky}`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(response.status, 404, sneaky);
  }
  const download = await fetch(`http://${server.web}/api/admin/recordings/${file}`, { headers: { authorization: `Bearer ${admin}` } });
  assert.equal(download.status, 200);
  const path = join(RESULTS, file);
  writeFileSync(path, Buffer.from(await download.arrayBuffer()));

  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`http://${server.web}/replay`);
  await page.getByTestId("replay-file").setInputFiles(path);
  await until("the replay plays the chat", () => page.getByTestId("chat-log").textContent().then((t) => t?.includes("gus: this line is recorded")));
  const gusAt = () => page.evaluate(() => (window as any).replay.replica.find("gus")?.props.pos.x as number | undefined);
  await until("the replay shows gus walking", async () => {
    const x = await gusAt();
    const start = await page.evaluate(() => (window as any).replay.records.length > 0);
    return start && x !== undefined;
  });
  // Pause holds the time; seeking back starts over; speed changes apply.
  await page.getByTestId("replay-pause").click();
  const held = await page.evaluate(() => (window as any).replay.at);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => (window as any).replay.at), held);
  await page.getByTestId("replay-seek").fill("0");
  // Back at the start: only the snapshot the server recorded first is applied.
  assert.equal(await page.evaluate(() => (window as any).replay.next), 1);
  assert.equal(await page.getByTestId("chat-log").textContent(), "entered arena, line 1");
  assert.ok(await page.evaluate(() => (window as any).replay.replica.find("gus") !== undefined), "the snapshot spawns who hana saw");
  await page.getByTestId("replay-speed").selectOption("4");
  await page.getByTestId("replay-pause").click();
  await until("the whole recording plays again", () => page.getByTestId("chat-log").textContent().then((t) => t?.includes("gus: this line is recorded")));
  await page.screenshot({ path: join(RESULTS, "replay.png") });
  gus.connection.close();
  hana.connection.close();
});

/** An Entered item's message, on the world's reliable channel, as hex. */
function enteredHex(line: number, map: string): string {
  return toHex(world.encodeReliable({ tick: 1, items: [{ type: "entered", zone: "arena", line, actor: 1, epoch: 99, tickHz: 20, speed: 5, viewRadius: 20, map }] }));
}

/**
 * Hands the page's connection a world message as if the server had sent it
 * (what the connection passes on after opening the packet). Returns the
 * milliseconds the page spent applying it, and until the next frame was
 * drawn with it.
 */
async function receive(page: Page, hex: string): Promise<{ applied: number; drawn: number }> {
  return page.evaluate(async (hex) => {
    const payload = new Uint8Array(hex.length / 2);
    for (let i = 0; i < payload.length; i++) payload[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    const started = performance.now();
    (window as any).hearth.connection.emit("message", { channel: 10, payload });
    const applied = performance.now() - started;
    // The page's own frame callback was asked for first: this one runs after it has drawn.
    await new Promise((done) => requestAnimationFrame(done));
    return { applied, drawn: performance.now() - started };
  }, hex);
}

test("a server's largest map draws at once, the line list stays short, and a line number out of range is refused", { timeout: 120_000 }, async () => {
  const page = await browserPlayer("kim");
  const side = world.MAX_ZONE_SIDE;
  const rows = Array.from({ length: side }, (_, y) => (y === side / 2 ? "S" : "#") + ".~P".repeat(side).slice(0, side - 1));
  const { applied, drawn } = await receive(page, enteredHex(1, rows.join("\n")));
  // A figure for the record, not a limit: the complexity is tested in client/test/map.test.ts.
  console.log(`a ${side} by ${side} map decoded in ${applied.toFixed(0)} ms, and drawn ${drawn.toFixed(0)} ms after it arrived`);
  assert.deepEqual(await page.evaluate(() => [(window as any).hearth.world.replica.map.width, (window as any).hearth.world.replica.map.height]), [side, side]);
  await page.screenshot({ path: join(RESULTS, "largest-map.png") });
  // The highest line a server can open: a few lines to choose from, not a hundred thousand.
  await receive(page, enteredHex(world.MAX_LINE, "S"));
  const offered = () => page.locator("#line-select option").evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value));
  assert.deepEqual(await offered(), ["1", "2", "3", "4", "99998", "99999", "100000"]);

  await receive(page, enteredHex(2 ** 32 - 1, "S"));
  await page.waitForFunction(() => document.getElementById("state")?.textContent === "closed", null, { timeout: 10_000 });
  assert.match((await page.locator("#why").textContent()) ?? "", /a world message did not decode: line 4294967295 is out of range: lines are numbered 1 to 100000/);
  assert.deepEqual(await offered(), ["1", "2", "3", "4", "99998", "99999", "100000"], "the refused Entered changed no option");
});
