// The tag example (examples/tag) in the browser: `tag serve` (a small arena,
// so both runners are always in view, and 10-second rounds) serves the
// game's own page at `/`; one player runs on that page in headless Chromium,
// the other is `tag play` (the Rust SDK over TCP and UDP, chasing when it is
// it and fleeing it otherwise), in the same arena. The page sees the Rust
// runner move; the page's runner moves with the keyboard (arrows, then WASD)
// and the Rust player sees it where the server has it; a round starts after
// the 5-second intermission with one runner it, the page shows the round and
// the scores, the round ends with the same winner and tags told on both
// sides, and the page never holds the other player's best (owner-only).
// Screenshots go to web/test-results/.

import assert from "node:assert/strict";
import { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { PASSWORD, Server, TAG_BIN, WEB_DIR, checkGamePage, startGame, startPlayer, until } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RESULTS = join(WEB_DIR, "test-results");
/** Seconds a round lasts here (`tag serve --round-secs`). */
const ROUND_SECS = 10;
/** Twelve cells by eight inside the walls: everywhere within the 16-cell view radius of everywhere else. */
const ARENA = ["##############", "#S..........S#", "#............#", "#...##.......#", "#...##...S...#", "#............#", "#.......##...#", "#S......##..S#", "#............#", "##############"].join("\n");
const CELL = 100;

let server: Server;
let browser: Browser;
const rust: ChildProcess[] = [];

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  server = await startGame(TAG_BIN, (dataDir) => {
    writeFileSync(join(dataDir, "arena.txt"), `${ARENA}\n`);
    return ["--map", join(dataDir, "arena.txt"), "--round-secs", String(ROUND_SECS)];
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  for (const child of rust) child.kill("SIGKILL");
  server?.stop();
});

test("the tag server serves its own page, script and stylesheet with the pages' security headers", async () => {
  await checkGamePage(server.web, "tag");
});

interface RunnerView {
  id: number;
  name: string;
  owned: boolean;
  it: boolean;
  score: number;
  best: number;
  x: number;
  y: number;
}

/** The page's view of the arena, read through `window.tag`. */
interface Seen {
  runners: RunnerView[];
  /** Where the server has this player's runner (`runners` has it where its moves put it). */
  mine?: { x: number; y: number };
  round?: { number: number; phase: string; secondsLeft: number };
  messages: { type: string; winner?: string; score?: number; it?: number; by?: number }[];
  hidden: { actor: number; kind: string; prop: string; value: string; isDefault: boolean }[];
  moves: number;
  state: string;
}

async function seen(page: Page): Promise<Seen> {
  return page.evaluate(() => {
    const tag = (window as any).tag;
    const controlled = tag.replica.controlled;
    return {
      runners: tag.runners(),
      mine: controlled === undefined ? undefined : tag.replica.serverPosition(controlled),
      round: tag.round(),
      messages: JSON.parse(JSON.stringify(tag.messages)),
      hidden: tag.hidden(),
      moves: tag.moves,
      state: document.getElementById("state")!.textContent!,
    };
  });
}

function distance(a: { x: number; y: number }, b: { x: number; y: number }): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

/** Where the Rust player last said `name` was, in position units, and how many times it said so. */
function rustSaw(out: string, name: string): { at?: { x: number; y: number }; times: number } {
  const pattern = new RegExp(`^${name} (?:is at|comes into view at) (\\d+\\.\\d+),(\\d+\\.\\d+)`, "gm");
  const all = [...out.matchAll(pattern)].map((m) => ({ x: Number(m[1]) * CELL, y: Number(m[2]) * CELL }));
  return { at: all[all.length - 1], times: all.length };
}

/** The page holds nothing of what only another player (or the server) may see. */
function assertNothingHidden(view: Seen): void {
  const known = view.hidden.filter((h) => !h.isDefault);
  assert.deepEqual(known, [], `the page knows another player's ${known.map((h) => `${h.kind}.${h.prop} = ${h.value}`).join(", ")}`);
  for (const runner of view.runners.filter((r) => !r.owned)) assert.equal(runner.best, 0, `${runner.name}'s best`);
}

test("a browser runner and a Rust SDK runner play tag: each sees the other move, a round plays out, neither sees the other's best", { timeout: 90_000 }, async () => {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`http://${server.web}/`);
  assert.equal(await page.title(), "Tag · Hearth");
  await page.getByTestId("name").fill("ann");
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => (window as any).tag?.me() !== undefined, null, { timeout: 15_000 });
  assert.equal(await page.getByTestId("state").textContent(), "online");
  await until("the page waits for another runner", () => page.getByTestId("prompt").textContent().then((t) => t === "waiting for another runner"));
  assert.equal(await page.getByTestId("round-phase").textContent(), "waiting");

  // The Rust SDK player: registers, runs by itself until told to stop.
  const bo = startPlayer(TAG_BIN, [`hearth://127.0.0.1:${server.game}`, "--name", "bob_rust", "--register", "--web", `http://${server.web}`, "--secs", "80"]);
  rust.push(bo.child);
  await bo.waitFor("the page sees bob's runner", () => seen(page).then((v) => v.runners.some((r) => r.name === "bob_rust" && !r.owned)), 20_000);
  await bo.waitFor("bob sees ann's runner", () => /^I am bob_rust, at /m.test(bo.out) && rustSaw(bo.out, "ann").times > 0);
  assert.match(bo.out, /^in the arena: 14 by 10 cells, seeing 16 cells around$/m);

  // The page sees the Rust runner move (it wanders, or flees, or chases).
  const bobAt = (v: Seen) => v.runners.find((r) => r.name === "bob_rust")!;
  const bobFirst = bobAt(await seen(page));
  await bo.waitFor("the page sees bob's runner move", () => seen(page).then((v) => distance(bobAt(v), bobFirst) >= CELL));

  // The page's runner moves with the keyboard: the server takes the moves
  // (its position for the runner follows), and the Rust player sees it there.
  await page.getByTestId("arena").focus();
  const keyboardMove = async (keys: string[]): Promise<{ from: { x: number; y: number }; to: { x: number; y: number } }> => {
    for (const key of keys) {
      const from = (await seen(page)).mine!;
      await page.keyboard.down(key);
      await new Promise((r) => setTimeout(r, 500));
      await page.keyboard.up(key);
      // The moves still in flight land.
      await until("the page's moves are taken", () => page.evaluate(() => (window as any).tag.replica.pendingMoves === 0));
      const to = (await seen(page)).mine!;
      if (distance(from, to) >= CELL) return { from, to };
    }
    throw new Error(`none of ${keys.join(", ")} moved the page's runner a cell`);
  };
  const moved = await keyboardMove(["ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp"]);
  const movesByArrows = (await seen(page)).moves;
  assert.ok(movesByArrows >= 5, `the page moved ${movesByArrows} times`);
  // Half a second at the legal speed (six cells a second) is at most three cells.
  assert.ok(distance(moved.from, moved.to) <= 3.5 * CELL, `the runner went from ${JSON.stringify(moved.from)} to ${JSON.stringify(moved.to)}`);
  await bo.waitFor("bob sees ann where the server has her", () => {
    const at = rustSaw(bo.out, "ann").at;
    return at !== undefined && distance(at, moved.to) < CELL && distance(at, moved.from) >= CELL / 2;
  });
  // WASD too: the other way.
  const back = moved.to.x > moved.from.x ? "KeyA" : moved.to.x < moved.from.x ? "KeyD" : moved.to.y > moved.from.y ? "KeyW" : "KeyS";
  const wasd = await keyboardMove([back]);
  await bo.waitFor("bob sees ann move back", () => {
    const at = rustSaw(bo.out, "ann").at;
    return at !== undefined && distance(at, wasd.to) < CELL;
  });
  // One move a tick, just under the legal speed, around the walls: the server refused none.
  assert.equal(await page.evaluate(() => (window as any).tag.corrections), 0, "the server corrected the page's runner");
  assertNothingHidden(await seen(page));

  // A round starts after the intermission (five seconds from bob's arrival): one runner is it.
  await bo.waitFor("round 1 starts on the page", () => page.getByTestId("round-phase").textContent().then((t) => t === "playing"), 15_000);
  assert.equal(await page.getByTestId("round-number").textContent(), "1");
  await bo.waitFor("bob sees round 1 start", () => /^round 1 starts: .+ is it$/m.test(bo.out));
  const start = await seen(page);
  const its = start.runners.filter((r) => r.it);
  assert.equal(its.length, 1, `one runner is it: ${JSON.stringify(start.runners)}`);
  // Both tell the same runner it when the round started (it may have tagged at once since).
  const bobSaysIt = /^round 1 starts: (.+) is it$/m.exec(bo.out)![1];
  const pageLog = (await page.getByTestId("log").textContent()) ?? "";
  assert.ok(pageLog.includes(`round 1 starts: ${bobSaysIt === "ann" ? "you are" : `${bobSaysIt} is`} it`), `the page's log: ${pageLog}; ${bo.said()}`);
  // The clock runs; with its first second, a point for the runner not it
  // (and five for a tag, if it came at once).
  await bo.waitFor("the page's clock runs", () => page.getByTestId("seconds-left").textContent().then((t) => Number(t) > 0 && Number(t) < ROUND_SECS));
  const rows = await page.getByTestId("score").allTextContents();
  assert.equal(rows.length, 2, rows.join(" | "));
  assert.ok(rows.some((row) => /^(ann \(you\)|bob_rust): [1-9]\d*/.test(row)), `points on the scoreboard: ${rows.join(" | ")}`);
  assert.ok(rows.some((row) => row.endsWith(" · it")), `the scoreboard marks it: ${rows.join(" | ")}`);
  await page.screenshot({ path: join(RESULTS, "tag.png") });

  // The round ends: the same winner and the same tags on both sides.
  await bo.waitFor("round 1 ends on the page", () => seen(page).then((v) => v.messages.some((m) => m.type === "round_over")), (ROUND_SECS + 5) * 1000);
  await bo.waitFor("bob sees round 1 end", () => /^round 1 is over: /m.test(bo.out));
  const end = await seen(page);
  assertNothingHidden(end);
  const over = end.messages.find((m) => m.type === "round_over")!;
  assert.match(bo.out, new RegExp(`^round 1 is over: ${over.winner} won with ${over.score} points$`, "m"));
  assert.ok(["ann", "bob_rust"].includes(over.winner!), over.winner);
  const log = (await page.getByTestId("log").textContent()) ?? "";
  assert.ok(log.includes(`round 1 is over: ${over.winner} won with ${over.score} points`), log);
  const pageTags = end.messages.filter((m) => m.type === "tagged").length;
  const bobTags = bo.out.split("\n").filter((line) => / tagged /.test(line)).length;
  assert.equal(bobTags, pageTags, "both were told every tag");
  // Someone was not it every second of the round: at least one new best.
  // Each is told their own, and sees it; the page never the other's.
  const annBest = end.messages.find((m) => m.type === "new_best")?.score;
  const bobBest = /^my new best: (\d+)$/m.exec(bo.out)?.[1];
  assert.ok(annBest !== undefined || bobBest !== undefined, `nobody scored: ${bo.said()}`);
  const me = end.runners.find((r) => r.owned)!;
  assert.equal(me.best, annBest ?? 0);
  assert.equal(await page.getByTestId("best").textContent(), String(annBest ?? 0));
  if (annBest !== undefined) assert.ok(log.includes(`your new best: ${annBest}`), log);
  const bob = end.runners.find((r) => r.name === "bob_rust")!;
  assert.equal(bob.best, 0, `bob's best (${bobBest ?? "none"}) reached the page`);
  await page.screenshot({ path: join(RESULTS, "tag-end.png") });

  // Told to stop, bob leaves at once, and the page sees him go.
  bo.child.kill("SIGTERM");
  assert.equal(await bo.exited(), 0, `tag play failed; ${bo.said()}`);
  assert.match(bo.out, /^told to stop$/m);
  assert.match(bo.out, /^leaving: saw \d+ tags and 1 rounds end, corrected \d+ times$/m);
  await until("the page sees bob leave", () => page.getByTestId("log").textContent().then((t) => !!t?.includes("bob_rust is out of view")));
  assert.deepEqual((await seen(page)).runners.map((r) => r.name), ["ann"]);
  assert.deepEqual(pageErrors, []);
});
