// The browser as a first-class player, in real headless Chromium (Debian's
// package, driven by playwright-core): two browser players and one Rust
// `hearth client` log in to a real `hearth serve`, see each other move and
// chat; one browser's connection is cut and it resumes; an administrator
// kicks a player from /admin and that browser shows why. Screenshots go to
// web/test-results/.

import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { BIN, PASSWORD, Server, WEB_DIR, cuttableRelay, startServer, until } from "./harness.js";

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
