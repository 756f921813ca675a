// The card example (examples/cards) in the browser: `cards serve` serves the
// game's own page at `/` (hearth_server::GamePage) with the built-in pages'
// security headers; one player plays on that page in headless Chromium,
// the other is `cards play` (the Rust SDK, over TCP and UDP), at the same
// table, a whole round to its end. Both tell the same moves in the same
// order (each sees the other's), and the page never holds the other
// player's hand: its replica has nothing but the type's default for every
// property only the owner (or the server) may see. Screenshots go to
// web/test-results/.

import assert from "node:assert/strict";
import { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, Page, chromium } from "playwright-core";
import { CARDS_BIN, PASSWORD, Server, WEB_DIR, checkGamePage, startCards, startPlayer, until } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const RESULTS = join(WEB_DIR, "test-results");
/** A move as both players tell it: "seat 1 played 31 (7♥)" or "seat 0 passed". */
const MOVE = /^seat (\d) (?:played (\d+) \(.+\)|passed)$/;
let server: Server;
let browser: Browser;
const rust: ChildProcess[] = [];

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  server = await startCards();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  for (const child of rust) child.kill("SIGKILL");
  server?.stop();
});

test("the card server serves its own page, script and stylesheet with the pages' security headers", async () => {
  await checkGamePage(server.web, "cards");
});

/** The page's view of the table, read through `window.cards`. */
interface Seen {
  myTurn: boolean;
  roundOver: boolean;
  winner?: number;
  mySeat?: number;
  moves: string[];
  seats: { number: number; owned: boolean; handSize: number; hand: number[] }[];
  hidden: { actor: number; kind: string; prop: string; value: string; isDefault: boolean }[];
  state: string;
}

async function seen(page: Page): Promise<Seen> {
  return page.evaluate(() => {
    const cards = (window as any).cards;
    return {
      myTurn: cards.myTurn() && !cards.waitingForTable,
      roundOver: cards.roundOver,
      winner: cards.winner,
      mySeat: cards.mySeat()?.number,
      moves: [...cards.moves],
      seats: cards.seats(),
      hidden: cards.hidden(),
      state: document.getElementById("state")!.textContent!,
    };
  });
}

/** The page holds nothing of what only another player (or the server) may see. */
function assertNothingHidden(view: Seen): void {
  const known = view.hidden.filter((h) => !h.isDefault);
  assert.deepEqual(known, [], `the page knows another player's ${known.map((h) => `${h.kind}.${h.prop} = ${h.value}`).join(", ")}`);
  for (const seat of view.seats.filter((s) => !s.owned)) assert.deepEqual(seat.hand, [], `seat ${seat.number}'s hand`);
}

test("a browser player and a Rust SDK player play a whole round of Higher; each sees the other's moves, neither the other's hand", { timeout: 240_000 }, async () => {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`http://${server.web}/`);
  assert.equal(await page.title(), "Higher · Hearth");
  await page.getByTestId("name").fill("ann");
  await page.getByTestId("password").fill(PASSWORD);
  await page.getByTestId("register").click();
  await page.waitForFunction(() => (window as any).cards?.mySeat() !== undefined, null, { timeout: 15_000 });
  assert.equal(await page.getByTestId("state").textContent(), "online");
  await until("the page asks for a second player", () => page.getByTestId("prompt").textContent().then((t) => t === "waiting for another player to sit down"));
  assert.equal(await page.getByTestId("start").isDisabled(), true, "a round needs two players");

  // The Rust SDK player: registers, sits down, plays by itself until the round ends.
  const bo = startPlayer(CARDS_BIN, [`hearth://127.0.0.1:${server.game}`, "--name", "bob_rust", "--register", "--web", `http://${server.web}`, "--secs", "200"]);
  rust.push(bo.child);
  const waitFor = bo.waitFor.bind(bo);

  await waitFor("the page sees bo sit down", () => seen(page).then((v) => v.seats.length === 2), 30_000);
  await waitFor("bo sees the page's player", () => /a player sits at seat \d/.test(bo.out) && /I sit at seat \d/.test(bo.out));
  const mine = (await seen(page)).mySeat!;
  const boSeat = Number(/I sit at seat (\d)/.exec(bo.out)![1]);
  assert.notEqual(boSeat, mine);

  // The page starts the round; then it plays on its turns with the page's own buttons.
  await page.getByTestId("start").click();
  await waitFor("the round starts", () => page.getByTestId("phase").textContent().then((t) => t === "playing"));
  let othersCards = 0;
  let clicks = 0;
  let shot = false;
  const deadline = Date.now() + 180_000;
  for (;;) {
    assert.ok(Date.now() < deadline, `no end of the round within three minutes; ${bo.said()}`);
    const view = await seen(page);
    assertNothingHidden(view);
    othersCards = Math.max(othersCards, ...view.seats.filter((s) => !s.owned).map((s) => s.handSize));
    assert.notEqual(view.state, "closed", `the page's session closed: ${await page.getByTestId("why").textContent()}`);
    if (view.roundOver) break;
    if (!view.myTurn) {
      await new Promise((r) => setTimeout(r, 40));
      continue;
    }
    if (!shot && view.moves.length >= 4) {
      await page.screenshot({ path: join(RESULTS, "cards.png") });
      shot = true;
    }
    // The page enables exactly the cards that beat the top; the lowest comes first.
    const playable = page.locator('[data-testid="card"]:enabled');
    if ((await playable.count()) > 0) await playable.first().click();
    else await page.getByTestId("pass").click();
    clicks++;
    // The move is told, or (dropped over the game's rate limit) the page lets the player try again.
    await waitFor("the table answers the page's move", () => seen(page).then((v) => v.moves.length > view.moves.length || v.roundOver || v.myTurn));
  }
  const end = await seen(page);
  assertNothingHidden(end);
  assert.ok(clicks > 0, "the page played");
  assert.ok(othersCards > 0, "bo held cards the page never saw");
  assert.notEqual(end.winner, undefined, "the round has a winner");
  assert.equal(await bo.exited(), 0, `cards play failed; ${bo.said()}`);
  await page.screenshot({ path: join(RESULTS, "cards-end.png") });

  // Both tell the same moves in the same order: the page saw every move of
  // bo's and bo every move of the page's.
  const boMoves = bo.out.split("\n").filter((line) => MOVE.test(line));
  assert.deepEqual(boMoves, end.moves);
  const seats = end.moves.map((move) => Number(MOVE.exec(move)![1]));
  assert.ok(seats.includes(mine) && seats.includes(boSeat), `moves of both seats: ${end.moves.join("; ")}`);
  // Two players: every move, a play or a pass, hands the turn to the other.
  seats.forEach((seat, i) => i > 0 && assert.notEqual(seat, seats[i - 1], `move ${i} is not the other seat's: ${end.moves.join("; ")}`));
  assert.match(bo.out, new RegExp(`^seat ${end.winner} won the round$`, "m"));
  assert.match(bo.out, new RegExp(`^the round is over: seat ${end.winner} won$`, "m"));
  // The page's log shows bo's moves too, and then bo leaving.
  const log = (await page.getByTestId("log").textContent()) ?? "";
  for (const move of end.moves.filter((m) => m.startsWith(`seat ${boSeat} `))) assert.ok(log.includes(move), `the log lacks "${move}"`);
  await until("the page sees bo leave", () => page.getByTestId("log").textContent().then((t) => t?.includes(`seat ${boSeat} left`)));
  // Nothing of another's hand in the page either: the only card faces are the top and the player's own hand.
  const faces = await page.locator("[data-card]").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.testid ?? e.id));
  assert.ok(faces.every((f) => f === "card" || f === "top"), faces.join());
  assert.deepEqual(pageErrors, []);
});
