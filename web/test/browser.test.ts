// The browser as a first-class player of the built-in world, in real
// headless Chromium (Debian's package, driven by playwright-core): two
// browsers on the world's page and one Rust `hearth client` log in to a real
// `hearth serve`, see each other move and chat, and the page shows hostile
// chat as text; one browser's connection is cut and it resumes; an
// administrator announces and kicks a player from /admin and that browser
// shows why; permessage-deflate; the server's recordings replayed on
// /replay (and an older Hearth's refused with the reason); the largest map
// a server can send drawn at once, each cell in its colour, and a map past
// the bound refused. Screenshots go to web/test-results/.

import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { MAP_LEGEND, MAX_MAP, MAX_ZONE_SIDE, encodeGameReliable, toHex } from "../client/src/index.js";
import { SCHEMA } from "../pages/world.generated.js";
import { BIN, PASSWORD, Server, WEB_DIR, account, api, cuttableRelay, startServer, until, worldPlayer } from "./harness.js";

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

/** Opens the world's page (optionally through `origin`), registers `name` and waits until it is in the arena. */
async function browserPlayer(name: string, origin = `http://${server.web}`): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error: ${e.message}`));
  const started = Date.now();
  await page.goto(`${origin}/`);
  await page.getByTestId("name").fill(name);
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => (window as any).world?.zone === "arena" && (window as any).world.beings().some((b: { owned: boolean }) => b.owned), null, {
    timeout: 15_000,
  });
  await page.waitForFunction(() => document.getElementById("state")?.textContent === "online");
  console.log(`${name}: page load, register, login and first world message in ${Date.now() - started} ms`);
  return page;
}

/** Where `page` has the player named `name`. */
async function seen(page: Page, name: string): Promise<{ x: number; y: number } | undefined> {
  return page.evaluate((who) => ((window as any).world.beings() as { name: string; x: number; y: number }[]).find((b) => b.name === who), name);
}

/** Says `text` on the page's chat, to the whole zone. */
async function say(page: Page, text: string): Promise<void> {
  await page.getByTestId("scope").selectOption("zone");
  await page.getByTestId("text").fill(text);
  await page.getByTestId("send").click();
}

/** Whether the page's log has a line that includes `text`. */
async function logged(page: Page, text: string): Promise<boolean> {
  return ((await page.getByTestId("log").textContent()) ?? "").includes(text);
}

test("two browsers and a Rust client play together; a cut browser resumes; an administrator announces and kicks from /admin", async () => {
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
  await until("ben hears carl", () => logged(ben, "carl (zone): hello from rust"));

  // ann walks right with the keyboard; ben sees her move.
  const before = (await seen(ben, "ann"))!;
  await ann.getByTestId("map").focus();
  await ann.keyboard.down("ArrowRight");
  await until("ben sees ann move", async () => ((await seen(ben, "ann"))?.x ?? 0) > before.x + 150);
  await ann.keyboard.up("ArrowRight");
  assert.equal(await ann.evaluate(() => (window as any).world.corrections), 0, "no move was refused");

  // ann chats from the page; ben and carl read it.
  await say(ann, "hi from chromium");
  await until("ben reads ann", () => logged(ben, "ann (zone): hi from chromium"));
  await until("carl reads ann", () => carlSaw.includes("[zone] ann: hi from chromium"));

  // Markup in chat is text on the page, never elements: nothing of it runs or renders.
  const hostile = `<img src=x onerror="document.title='pwned'"><b>bold</b>`;
  await say(ann, hostile);
  await until("ben reads the markup as text", () => logged(ben, `ann (zone): ${hostile}`));
  assert.equal(await ben.locator("[data-testid=log] img, [data-testid=log] b").count(), 0);
  assert.equal(await ben.title(), "Hearth");
  await ann.screenshot({ path: join(RESULTS, "game.png") });

  // ann's connection is cut: the page says so, then resumes on its own.
  relay.cut(true);
  await ann.waitForFunction(() => document.getElementById("state")?.textContent === "reconnecting", null, { timeout: 15_000 });
  await say(ben, "said while ann was away");
  relay.cut(false);
  await ann.waitForFunction(() => document.getElementById("state")?.textContent === "resumed", null, { timeout: 15_000 });
  await until("ann gets what was said while away", () => logged(ann, "ben (zone): said while ann was away"));
  await say(ann, "back again");
  await until("ben reads ann after the resume", () => logged(ben, "ann (zone): back again"));

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
  // Where the load comes from: the three players' sessions, heaviest first,
  // with what they sent and were sent; and the host's own load.
  await until("the dashboard names the heaviest sessions", () =>
    admin.locator("[data-testid=admin-heaviest] tbody tr").count().then((n) => n === 3),
  );
  const heaviest = await admin.locator("[data-testid=admin-heaviest] tbody tr td:nth-child(2)").allTextContents();
  const packets = heaviest.map((t) => t.split(" / ").reduce((sum, n) => sum + Number(n), 0));
  assert.deepEqual(packets, [...packets].sort((a, b) => b - a), "heaviest first");
  assert.ok(packets.every((n) => n > 0), `${heaviest}`);
  assert.match((await admin.getByTestId("admin-sessions").textContent()) ?? "", /refusing newcomers\s*no/);
  await admin.getByTestId("announce-text").fill("maintenance at noon");
  await admin.getByTestId("announce").click();
  await until("ann reads the announcement", () => ann.locator("[data-testid=log] .system", { hasText: "maintenance at noon" }).count());
  await until("carl reads the announcement", () => carlSaw.includes("[system] maintenance at noon"));
  await admin.getByTestId("kick-name").fill("ben");
  await admin.getByTestId("kick-reason").fill("testing the dashboard");
  await admin.getByTestId("kick").click();
  await ben.waitForFunction(() => document.getElementById("state")?.textContent === "closed", null, { timeout: 10_000 });
  assert.equal(await ben.getByTestId("why").textContent(), "kicked by an administrator: testing the dashboard");
  assert.ok(await logged(ben, "disconnected: kicked by an administrator: testing the dashboard"));
  await new Promise((r) => setTimeout(r, 2500)); // a few chart points
  await admin.screenshot({ path: join(RESULTS, "admin.png"), fullPage: true });
  await ann.context().close();
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
    await until("the connection uses the extension", () => eve.evaluate(() => (window as any).world.connection.transport as string).then((t) => t.includes("permessage-deflate")));
    // A long line: the WebSocket messages carrying it are big enough to be compressed.
    const long = "compressed ".repeat(20).trim();
    await say(eve, long);
    await until("fin reads eve", () => logged(fin, `eve (zone): ${long}`));
  } finally {
    deflating.stop();
  }
});

/** An HRTHREC1 recording of `records`, as a file for the replay page. */
function recordingFile(name: string, records: { channel: number; bytes: Uint8Array }[]): string {
  const parts = [Buffer.from("HRTHREC1")];
  records.forEach((record, i) => {
    const head = Buffer.alloc(14);
    head.writeBigUInt64LE(BigInt(i * 1000), 0);
    head.writeUInt16LE(record.channel, 8);
    head.writeUInt32LE(record.bytes.length, 10);
    parts.push(head, Buffer.from(record.bytes));
  });
  const path = join(RESULTS, name);
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

test("the server records a player; the recording downloads for administrators only and replays in the browser", async () => {
  const gus = await worldPlayer(server, "gus");
  const hana = await worldPlayer(server, "hana");
  const admin = await account(server.web, "root", false);
  const started = await api(server.web, "/api/admin/record", { name: "hana", seconds: 3 }, admin);
  assert.equal(started.status, 201, JSON.stringify(started.json));
  const file = started.json.file as string;
  assert.match(file, /^hana-\d+\.hrec$/);
  assert.equal((await api(server.web, "/api/admin/record", { name: "hana", seconds: 3 }, admin)).status, 409, "one recording per player at a time");
  await new Promise((r) => setTimeout(r, 500));
  gus.say("zone", "this line is recorded");
  const goal = { x: gus.position!.x + 300, y: gus.position!.y };
  await gus.walkTo(goal);
  await until("both recordings end", async () => ((await api(server.web, "/api/admin/recordings", undefined, admin)).json.cost as { active: number }).active === 0);

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
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`http://${server.web}/replay`);
  await page.getByTestId("replay-file").setInputFiles(path);
  await until("the replay plays the chat", () => page.getByTestId("chat-log").textContent().then((t) => t?.includes("gus (zone): this line is recorded")));
  const gusAt = () => page.evaluate(() => ((window as any).replay.game.beings() as { name: string; x: number }[]).find((b) => b.name === "gus")?.x);
  await until("the replay shows gus where he walked", async () => (await gusAt()) === goal.x);
  // A recording holds what was sent: it ends with the last of it, and the page stops there.
  await until("the replay ends", () => page.getByTestId("replay-pause").textContent().then((t) => t === "Play"));
  // Seeking back starts over: just after the first record, hana's whole view sent first, only it is applied.
  const first = await page.evaluate(() => (window as any).replay.records[0].micros / 1000);
  await page.getByTestId("replay-seek").fill(String(Math.ceil(first / 10) * 10));
  assert.equal(await page.evaluate(() => (window as any).replay.next), 1);
  assert.equal(await page.getByTestId("chat-log").textContent(), "");
  assert.ok(await gusAt(), "the first record spawns who hana saw");
  // Pause holds the time; speed changes apply.
  await page.getByTestId("replay-speed").selectOption("0.25");
  await page.getByTestId("replay-pause").click();
  await new Promise((r) => setTimeout(r, 200));
  await page.getByTestId("replay-pause").click();
  const held = await page.evaluate(() => (window as any).replay.at);
  assert.ok(held > first, "it played");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => (window as any).replay.at), held);
  await page.getByTestId("replay-speed").selectOption("4");
  await page.getByTestId("replay-pause").click();
  await until("the whole recording plays again", () => page.getByTestId("chat-log").textContent().then((t) => t?.includes("gus (zone): this line is recorded")));
  await page.screenshot({ path: join(RESULTS, "replay.png") });

  // What this page cannot play is refused with the reason, and nothing plays.
  const fresh = await (await browser.newContext()).newPage();
  await fresh.goto(`http://${server.web}/replay`);
  await fresh.getByTestId("replay-file").setInputFiles(recordingFile("older-hearth.hrec", [{ channel: 10, bytes: new Uint8Array([1, 0]) }]));
  await until("an older Hearth's recording is refused", () => fresh.getByTestId("replay-error").textContent());
  assert.match((await fresh.getByTestId("replay-error").textContent())!, /made by an older Hearth, whose world engine is gone/);
  const cards = new TextEncoder().encode(JSON.stringify({ game: "cards", version: "0123456789abcdef" }));
  await fresh.getByTestId("replay-file").setInputFiles(recordingFile("cards.hrec", [{ channel: 0xffff, bytes: cards }, { channel: 10, bytes: new Uint8Array([1, 0]) }]));
  await until("another game's recording is refused", () => fresh.getByTestId("replay-error").textContent().then((t) => t?.includes("the game cards")));
  assert.match((await fresh.getByTestId("replay-error").textContent())!, /hearth replay FILE plays any game's/);
  assert.equal(await fresh.evaluate(() => (window as any).replay), undefined);
  assert.deepEqual(errors, []);
  gus.connection.close();
  hana.connection.close();
});

/** The world's joined for a line of its own (the entry no real line of this session has), with `map`, as hex. */
function joinedHex(map: string): string {
  const joined = { type: "joined" as const, version: SCHEMA.version, tickHz: 20, map, viewRadius: 24, speeds: [5, 5], entry: 250 };
  return toHex(encodeGameReliable(1, [joined], SCHEMA, () => undefined));
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
    (window as any).world.connection.emit("message", { channel: 10, payload });
    const applied = performance.now() - started;
    // The page's own frame callback was asked for first: this one runs after it has drawn.
    await new Promise((done) => requestAnimationFrame(done));
    return { applied, drawn: performance.now() - started };
  }, hex);
}

/** The colour the page's map canvas has at (x, y), as #rrggbb. */
async function colourAt(page: Page, x: number, y: number): Promise<string> {
  return page.evaluate(([x, y]) => {
    const [r, g, b] = (document.getElementById("map") as HTMLCanvasElement).getContext("2d")!.getImageData(x!, y!, 1, 1).data;
    return `#${[r, g, b].map((c) => c!.toString(16).padStart(2, "0")).join("")}`;
  }, [x, y]);
}

test("a server's largest map draws at once, each cell in its colour, and a map past the bound is refused", { timeout: 120_000 }, async () => {
  const page = await browserPlayer("kim");
  const side = MAX_ZONE_SIDE;
  const rows = Array.from({ length: side }, (_, y) => Array.from({ length: side }, (_, x) => MAP_LEGEND[(x * 7 + y * 3) % 5]).join(""));
  const largest = rows.join("\n");
  const { applied, drawn } = await receive(page, joinedHex(largest));
  // A figure for the record, not a limit: the complexity is tested in client/test/map.test.ts.
  console.log(`a ${side} by ${side} map decoded in ${applied.toFixed(0)} ms, and drawn ${drawn.toFixed(0)} ms after it arrived`);
  assert.deepEqual(await page.evaluate(() => [(window as any).world.map.width, (window as any).world.map.height]), [side, side]);
  await page.screenshot({ path: join(RESULTS, "largest-map.png") });

  // Three cells by two, the first row short: each cell in its colour, past the short row a wall.
  await receive(page, joinedHex("#~\n.SP"));
  const scale = await page.evaluate(() => (document.getElementById("map") as HTMLCanvasElement).width / 3);
  const colours = { wall: "#4a4136", water: "#2f6690", floor: "#7a9a55", spawn: "#8fae62", portal: "#b48ead" };
  const expected = [
    [colours.wall, colours.water, colours.wall],
    [colours.floor, colours.spawn, colours.portal],
  ];
  for (const [y, row] of expected.entries()) {
    for (const [x, colour] of row.entries()) {
      assert.equal(await colourAt(page, x * scale + scale / 2, y * scale + scale / 2), colour, `cell ${x},${y}`);
    }
  }
  assert.equal(await page.getByTestId("why").textContent(), "", "the session is still up");

  // A map a byte past the largest a zone can have: the page closes the session and says why.
  const pastTheBound = `${largest}\n.`;
  assert.equal(pastTheBound.length, MAX_MAP + 1);
  await receive(page, joinedHex(pastTheBound));
  await page.waitForFunction(() => document.getElementById("state")?.textContent === "closed", null, { timeout: 10_000 });
  assert.match((await page.getByTestId("why").textContent()) ?? "", new RegExp(`a game message did not apply: map is ${MAX_MAP + 1} bytes, the limit is ${MAX_MAP}`));
});
