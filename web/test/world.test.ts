// The built-in world on the game API in the browser: `hearth serve` serves
// the world's page at `/`; two players log in on it in headless Chromium.
// Each enters the meadow; one walks with the keyboard (the server takes
// every move at the zone's speed, none is corrected); they talk on the line
// and whisper; one travels to the caves (a new line: the page starts afresh
// there, at the caves' slower speed) and a whisper still finds her.
// Screenshots go to web/test-results/.

import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { BIN, PASSWORD, Server, WEB_DIR, account, api, startGame, startServer, until } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RESULTS = join(WEB_DIR, "test-results");
const CELL = 100;

let server: Server;
let browser: Browser;

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  server = await startGame(BIN);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

interface Seen {
  zone: string;
  entries: number;
  mine?: { x: number; y: number };
  moves: number;
  corrections: number;
  pending: number;
  speed: number;
  chat: string[];
  refused: string[];
}

async function seen(page: Page): Promise<Seen> {
  return page.evaluate(() => {
    const world = (window as any).world;
    const controlled = world.replica.controlled;
    const messages = world.messages as { type: string; text?: string; reason?: string }[];
    return {
      zone: world.zone,
      entries: world.entries,
      mine: controlled === undefined ? undefined : world.replica.serverPosition(controlled),
      moves: world.moves,
      corrections: world.corrections,
      pending: world.replica.pendingMoves,
      speed: world.replica.speeds[0],
      chat: messages.filter((m) => m.type === "chat").map((m) => m.text!),
      refused: messages.filter((m) => m.type === "refused").map((m) => m.reason!),
    };
  });
}

async function enter(name: string): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`http://${server.web}/`);
  assert.equal(await page.title(), "Hearth");
  await page.getByTestId("name").fill(name);
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => (window as any).world?.zone === "meadow", null, { timeout: 15_000 });
  assert.equal(await page.getByTestId("state").textContent(), "online");
  assert.equal(await page.getByTestId("zone").textContent(), "meadow");
  assert.deepEqual(errors, []);
  return page;
}

async function say(page: Page, scope: string, to: string, text: string): Promise<void> {
  await page.getByTestId("scope").selectOption(scope);
  await page.getByTestId("to").fill(to);
  await page.getByTestId("text").fill(text);
  await page.getByTestId("send").click();
}

test("two players on the world's page walk, talk, whisper and travel", { timeout: 90_000 }, async () => {
  const ann = await enter("ann");
  const ben = await enter("ben");
  assert.equal((await seen(ann)).speed, 5, "the meadow's speed, from joined");

  // Ann walks with the keyboard: the server takes her moves, corrects none.
  await ann.getByTestId("map").focus();
  let walked = false;
  for (const key of ["ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp"]) {
    const from = (await seen(ann)).mine!;
    await ann.keyboard.down(key);
    await new Promise((r) => setTimeout(r, 500));
    await ann.keyboard.up(key);
    await until("ann's moves are taken", () => seen(ann).then((v) => v.pending === 0));
    const to = (await seen(ann)).mine!;
    if (Math.hypot(to.x - from.x, to.y - from.y) >= CELL) {
      walked = true;
      break;
    }
  }
  assert.ok(walked, "the keyboard moved ann a cell");
  assert.equal((await seen(ann)).corrections, 0, "no move was refused");

  // The line hears ann; ben whispers back.
  await say(ann, "line", "", "hello from the browser");
  await until("ben hears ann", () => seen(ben).then((v) => v.chat.includes("hello from the browser")));
  await say(ben, "whisper", "ann", "psst, ann");
  await until("ann hears the whisper", () => seen(ann).then((v) => v.chat.includes("psst, ann")));

  // Ann travels to the caves: a new line, where the page starts afresh.
  await ann.getByTestId("travel-to").fill("caves");
  await ann.getByTestId("travel").click();
  await until("ann is in the caves", () => seen(ann).then((v) => v.zone === "caves" && v.entries === 2 && v.mine !== undefined));
  assert.equal(await ann.getByTestId("zone").textContent(), "caves");
  assert.equal((await seen(ann)).speed, 4, "the caves are slower");
  await say(ben, "whisper", "ann", "still there?");
  await until("the whisper finds ann in the caves", () => seen(ann).then((v) => v.chat.includes("still there?")));
  // A travel to where she is, refused with the reason.
  await ann.getByTestId("travel-to").fill("caves");
  await ann.getByTestId("travel").click();
  await until("the travel is refused", () => seen(ann).then((v) => v.refused.includes("you are already in caves")));
  await ann.screenshot({ path: join(RESULTS, "world-api.png") });
  const log = (await ann.getByTestId("log").textContent()) ?? "";
  assert.ok(log.includes("you are in caves"), log);
});

test("the server records a player and a line of the world on the game API; the replay page plays both", { timeout: 90_000 }, async () => {
  const arena = await startServer(["root"]);
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
    await page.goto(`http://${arena.web}/`);
    await page.getByTestId("name").fill("joan");
    await page.getByTestId("password").fill(PASSWORD);
    await page.getByTestId("register").click();
    await page.waitForFunction(() => (window as any).world?.zone === "arena", null, { timeout: 15_000 });
    const admin = await account(arena.web, "root", false);
    const files: string[] = [];
    for (const body of [{ name: "joan", seconds: 3 }, { zone: "arena", line: 1, seconds: 3 }]) {
      const started = await api(arena.web, "/api/admin/record", body, admin);
      assert.equal(started.status, 201, JSON.stringify(started.json));
      files.push(started.json.file as string);
    }
    assert.match(files[0]!, /^joan-\d+\.hrec$/);
    assert.match(files[1]!, /^arena-line1-\d+\.hrec$/);
    // Joan's page is sent everything again (a second joined), and goes on.
    await page.waitForFunction(() => (window as any).world.entries === 2, null, { timeout: 10_000 });
    await say(page, "line", "", "recorded in the arena");
    await page.getByTestId("map").focus();
    await page.keyboard.down("ArrowRight");
    await new Promise((r) => setTimeout(r, 600));
    await page.keyboard.up("ArrowRight");
    await until("both recordings end", async () => ((await api(arena.web, "/api/admin/recordings", undefined, admin)).json.cost as { active: number }).active === 0);

    for (const file of files) {
      const download = await fetch(`http://${arena.web}/api/admin/recordings/${file}`, { headers: { authorization: `Bearer ${admin}` } });
      assert.equal(download.status, 200);
      const path = join(RESULTS, file);
      writeFileSync(path, Buffer.from(await download.arrayBuffer()));
      const replay = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
      const errors: string[] = [];
      replay.on("pageerror", (e) => errors.push(e.message));
      await replay.goto(`http://${arena.web}/replay`);
      await replay.getByTestId("replay-file").setInputFiles(path);
      await until(`${file} plays the chat`, () => replay.getByTestId("chat-log").textContent().then((t) => t?.includes("joan (line): recorded in the arena")));
      const jo = () =>
        replay.evaluate(() => ((window as any).replay.game.beings() as { name: string; owned: boolean; x: number }[]).find((b) => b.name === "joan"));
      await until(`${file} shows joan`, () => jo());
      // Joan's own recording knows she steers; the line's has nobody steering.
      assert.equal((await jo())!.owned, file.startsWith("joan-"), file);
      // Seeking back starts over from the first record.
      await replay.getByTestId("replay-pause").click();
      await replay.getByTestId("replay-seek").fill("0");
      assert.ok((await replay.evaluate(() => (window as any).replay.next)) <= 1);
      assert.ok(!(await replay.getByTestId("chat-log").textContent())?.includes("recorded in the arena"));
      await replay.getByTestId("replay-speed").selectOption("4");
      await replay.getByTestId("replay-pause").click();
      await until(`${file} plays again`, () => replay.getByTestId("chat-log").textContent().then((t) => t?.includes("recorded in the arena")));
      await replay.screenshot({ path: join(RESULTS, `replay-api-${file.startsWith("joan-") ? "player" : "line"}.png`) });
      assert.deepEqual(errors, []);
    }
  } finally {
    arena.stop();
  }
});
