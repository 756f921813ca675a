// Tag's page: log in and open the session as every game's page does
// (web/pages/game-login.ts), then play with the game's generated bindings
// (tag.generated.ts: runners, the round, the server's messages) over the
// client library's generic replica. Hearth moves the runner: the page
// predicts each move at once (replica.moveTo), checked against the arena's
// walls first (ZoneMap, the server's own test) and kept just under the legal
// speed, one a tick; the server confirms or corrects. The canvas draws the
// arena and every runner in view (this player's where its moves put it, the
// others where the server last said, smoothed). Text that came from the
// server goes into the page with textContent and fillText only. For tests,
// `window.tag` holds the replica and what the page made of it.

import { ZoneMap } from "../../../web/client/src/index.js";
import type { Connection, GameEvent } from "../../../web/client/src/index.js";
import { RELIABLE_CHANNEL, STATE_CHANNEL, UNITS_PER_CELL } from "../../../web/client/src/game/replica.js";
import { $, hiddenValues, logTo, setUpLogin } from "../../../web/pages/game-login.js";
import type { HiddenValue } from "../../../web/pages/game-login.js";
import { Round, Runner, SCHEMA, VERSION, decodeMessage, newReplica } from "./tag.generated.js";
import type { Message, RoundPhase } from "./tag.generated.js";

interface Pos {
  x: number;
  y: number;
}

/** A runner in view, as the page sees it: `x`, `y` in hundredths of a cell (this player's predicted, another's as the server said). */
export interface RunnerView {
  id: number;
  name: string;
  owned: boolean;
  it: boolean;
  score: number;
  best: number;
  x: number;
  y: number;
}

/** Messages `window.tag.messages` keeps. */
const MAX_MESSAGES = 10_000;
/** Names of runners gone from view remembered (to name them in a later tag). */
const MAX_NAMES = 1024;
/** Position units under the legal speed a move keeps (rounding, timer jitter). */
const MARGIN = 2;
/** Directions by key: the arrows, and WASD where they are on the keyboard. */
const DIRECTIONS: Record<string, [number, number]> = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
  KeyA: [-1, 0],
  KeyD: [1, 0],
  KeyW: [0, -1],
  KeyS: [0, 1],
};

/** What the page knows; `window.tag`, for tests and the curious. */
class TagPage {
  readonly replica = newReplica();
  connection?: Connection;
  name = "";
  /** The arena's map, from the server's Joined. */
  map?: ZoneMap;
  /** Every message of the game received, typed, in order. */
  readonly messages: Message[] = [];
  /** Moves made (and sent). */
  moves = 0;
  /** Moves the server refused (each snapped the runner back). */
  corrections = 0;
  /** The keys held, by code. */
  readonly held = new Set<string>();
  private readonly names = new Map<number, string>();
  private roundSeen?: { number: number; phase: RoundPhase };

  me(): Runner | undefined {
    return Runner.all(this.replica).find((runner) => runner.owned);
  }

  /** Every runner in view, by score (highest first), then name. */
  runners(): RunnerView[] {
    return Runner.all(this.replica)
      .map((runner) => {
        const at = (runner.owned ? this.replica.position(runner.id) : this.replica.serverPosition(runner.id)) ?? { x: 0, y: 0 };
        return { id: runner.id, name: runner.name, owned: runner.owned, it: runner.it, score: runner.score, best: runner.best, x: at.x, y: at.y };
      })
      .sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
  }

  round(): { number: number; phase: RoundPhase; secondsLeft: number } | undefined {
    const round = Round.all(this.replica)[0];
    return round && { number: round.number, phase: round.phase, secondsLeft: round.secondsLeft };
  }

  /** What the replica holds of properties only another player (or the server) may see: nothing but defaults, ever. */
  hidden(): HiddenValue[] {
    return hiddenValues(this.replica);
  }

  /** Position units one tick's move covers: just under the runner's legal speed. */
  stepPerTick(): number {
    const speed = SCHEMA.kinds[Runner.KIND]!.movement!.speed;
    return Math.floor((speed * UNITS_PER_CELL) / (this.replica.tickHz ?? 20)) - MARGIN;
  }

  /** Applies what arrived on a game channel; false (and the session is closed) when it does not apply. */
  receive(channel: number, payload: Uint8Array): boolean {
    try {
      if (channel === RELIABLE_CHANNEL) this.replica.applyReliable(payload);
      else if (channel === STATE_CHANNEL) this.replica.applyFrame(payload);
      else return true;
    } catch (e) {
      // The server never sends what does not apply: a bug worth closing over.
      this.connection?.close(`a game message did not apply: ${(e as Error).message}`);
      return false;
    }
    this.tell();
    this.sendAck();
    return true;
  }

  /** One tick's move, the way the held keys point: straight on, else along the wall in the way; shortened up to a wall. */
  step(): void {
    const id = this.replica.controlled;
    if (!this.connection || !this.map || id === undefined || !this.replica.actors.has(id)) return;
    let dx = 0;
    let dy = 0;
    for (const key of this.held) {
      const [x, y] = DIRECTIONS[key]!;
      dx += x;
      dy += y;
    }
    dx = Math.sign(dx);
    dy = Math.sign(dy);
    if (dx === 0 && dy === 0) return;
    const at = this.replica.position(id)!;
    const step = this.stepPerTick();
    const ways: [number, number][] = [[dx, dy]];
    if (dx !== 0 && dy !== 0) ways.push([dx, 0], [0, dy]);
    for (const [wx, wy] of ways) {
      const length = wx !== 0 && wy !== 0 ? Math.floor(step / Math.SQRT2) : step;
      for (const part of [1, 0.5, 0.25]) {
        const by = Math.floor(length * part);
        const to = { x: at.x + wx * by, y: at.y + wy * by };
        if (by > 0 && this.map.pathClear(at, to)) {
          this.replica.moveTo(to.x, to.y);
          this.moves++;
          this.sendAck();
          return;
        }
      }
    }
  }

  private sendAck(): void {
    const ack = this.replica.pollAck();
    if (ack) this.connection?.send(STATE_CHANNEL, ack);
  }

  /** The runner's name for the log: "you" for this player's. */
  private who(id: number): string {
    if (id === this.replica.controlled) return "you";
    return this.names.get(id) ?? "a runner out of view";
  }

  /** Reads the events of what was just applied and the round after it, into the log (the same rules as `tag play`). */
  private tell(): void {
    const events: GameEvent[] = [];
    for (let event = this.replica.pollEvent(); event; event = this.replica.pollEvent()) events.push(event);
    // A change of the round is told before the game's messages, which it may have caused (a tag in a round's first tick).
    let roundNews = this.roundNews(events);
    for (const event of events) {
      if (event.type === "message" && roundNews) {
        log(roundNews, "system");
        roundNews = undefined;
      }
      if (event.type === "joined") {
        try {
          this.map = new ZoneMap(this.replica.map);
          log(`in the arena: ${this.map.width} by ${this.map.height} cells`, "system");
        } catch (e) {
          this.map = undefined;
          log(`the arena's map is unreadable: ${(e as Error).message}`, "system");
        }
      } else if (event.type === "spawned") {
        const runner = Runner.get(this.replica, event.id);
        if (!runner) continue;
        if (this.names.size >= MAX_NAMES) this.names.delete(this.names.keys().next().value!);
        this.names.set(event.id, runner.name);
        if (!runner.owned) log(`${runner.name} comes into view${runner.it ? " (it)" : ""}`, "quiet");
      } else if (event.type === "despawned") {
        const name = this.names.get(event.id);
        if (name !== undefined && event.id !== this.replica.controlled) log(`${name} is out of view`, "quiet");
      } else if (event.type === "corrected") {
        this.corrections++;
      } else if (event.type === "message") {
        const message = decodeMessage(event);
        if (!message) continue;
        if (this.messages.length >= MAX_MESSAGES) this.messages.shift();
        this.messages.push(message);
        const mine = this.replica.controlled;
        if (message.type === "tagged") {
          const involved = message.it === mine || message.by === mine;
          log(`${this.who(message.by)} tagged ${this.who(message.it)}${message.it === mine ? ": you are it" : ""}`, involved ? "mine" : "");
        } else if (message.type === "round_over") {
          log(`round ${this.roundSeen?.number ?? "?"} is over: ${message.winner} won with ${message.score} points`, "system");
        } else if (message.type === "new_best") {
          log(`your new best: ${message.score}`, "mine");
        }
      }
    }
    if (roundNews) log(roundNews, "system");
  }

  /** The round's change, if it changed, in words. Who was it when it started: the first tagger of `events` if someone was tagged at once, else who is it now. */
  private roundNews(events: GameEvent[]): string | undefined {
    const round = this.round();
    if (!round || (round.number === this.roundSeen?.number && round.phase === this.roundSeen.phase)) return undefined;
    const before = this.roundSeen;
    this.roundSeen = { number: round.number, phase: round.phase };
    let firstTagger: number | undefined;
    for (const event of events) {
      const message = decodeMessage(event);
      if (message?.type === "tagged") {
        firstTagger = message.by;
        break;
      }
    }
    let it: string;
    if (firstTagger !== undefined) it = firstTagger === this.replica.controlled ? "you are" : `${this.who(firstTagger)} is`;
    else {
      const now = Runner.all(this.replica).find((runner) => runner.it);
      it = now ? (now.owned ? "you are" : `${now.name} is`) : "a runner out of view is";
    }
    if (round.phase === "playing") return `round ${round.number} ${before ? "starts" : "is being played"}: ${it} it`;
    if (round.phase === "waiting") return Runner.all(this.replica).length < 2 ? "waiting for a second runner" : "a round starts soon";
    return undefined;
  }
}

const tag = new TagPage();
(window as unknown as { tag: TagPage }).tag = tag;

function log(text: string, kind = ""): void {
  logTo("log", text, kind);
}

/** The round, the prompt, the scores and this player's best, from the replica. */
function render(): void {
  const round = tag.round();
  const me = tag.me();
  const runners = tag.runners();
  $("round-number").textContent = round && round.number > 0 ? String(round.number) : "–";
  $("round-phase").textContent = round?.phase ?? "–";
  $("seconds-left").textContent = round?.phase === "playing" ? String(round.secondsLeft) : "–";
  $("best").textContent = me ? String(me.best) : "–";
  let prompt = "";
  const it = runners.find((runner) => runner.it);
  if (!me || !round) prompt = "entering the arena…";
  else if (round.phase === "playing") {
    if (me.it) prompt = "you are it: tag someone!";
    else prompt = it ? `run from ${it.name}!` : "run! it is out of view";
  } else if (round.phase === "over") prompt = "the round is over: the next starts in a moment";
  else prompt = runners.length < 2 ? "waiting for another runner" : "a round starts in a moment";
  $("prompt").textContent = prompt;
  $("prompt").classList.toggle("it", !!me?.it && round?.phase === "playing");
  $("scores").replaceChildren(
    ...runners.map((runner) => {
      const item = document.createElement("li");
      item.dataset.testid = "score";
      item.classList.toggle("mine", runner.owned);
      item.classList.toggle("it", runner.it);
      item.textContent = `${runner.name}${runner.owned ? " (you)" : ""}: ${runner.score}${runner.it ? " · it" : ""}`;
      return item;
    }),
  );
}

// The arena on the canvas.
const canvas = $<HTMLCanvasElement>("arena");
const ctx = canvas.getContext("2d")!;
/** Pixels per cell; the canvas takes the map's shape. */
let scale = 20;
let mapImage: HTMLCanvasElement | undefined;
let mapOf: ZoneMap | undefined;
/** Where each other runner is drawn: eased towards where the server says, a few pixels a frame. */
const drawn = new Map<number, Pos>();
let lastFrame = 0;

const CELL_COLOURS: Record<string, string> = { "#": "#4a4136", "~": "#2f6690", ".": "#7a9a55", S: "#8fae62", P: "#8fae62" };

function mapCanvas(map: ZoneMap): HTMLCanvasElement {
  if (mapImage && mapOf === map) return mapImage;
  scale = Math.max(6, Math.floor(Math.min(960 / map.width, 600 / map.height)));
  canvas.width = map.width * scale;
  canvas.height = map.height * scale;
  const image = document.createElement("canvas");
  image.width = canvas.width;
  image.height = canvas.height;
  const g = image.getContext("2d")!;
  for (let y = 0; y < map.height; y++) {
    for (let x = 0; x < map.width; x++) {
      g.fillStyle = CELL_COLOURS[map.cell(x, y)] ?? "#4a4136";
      g.fillRect(x * scale, y * scale, scale, scale);
    }
  }
  mapImage = image;
  mapOf = map;
  return image;
}

function draw(now: number): void {
  const elapsed = Math.min(now - lastFrame, 100);
  lastFrame = now;
  ctx.fillStyle = "#2b2f26";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const map = tag.map;
  if (!map) return;
  ctx.drawImage(mapCanvas(map), 0, 0);
  const px = (units: number) => (units / UNITS_PER_CELL) * scale;
  const runners = tag.runners();
  const me = runners.find((runner) => runner.owned);
  if (me && tag.replica.viewRadius > 0) {
    // Beyond the view radius, shaded: runners there are not sent.
    ctx.beginPath();
    ctx.rect(0, 0, canvas.width, canvas.height);
    ctx.arc(px(me.x), px(me.y), tag.replica.viewRadius * scale, 0, Math.PI * 2, true);
    ctx.fillStyle = "rgba(20, 20, 20, .35)";
    ctx.fill();
  }
  const seen = new Set<number>();
  for (const runner of runners) {
    seen.add(runner.id);
    let at: Pos = { x: runner.x, y: runner.y };
    if (!runner.owned) {
      const was = drawn.get(runner.id);
      // A jump (a respawn) is drawn at once; a run, eased.
      if (was && Math.hypot(at.x - was.x, at.y - was.y) < 2 * UNITS_PER_CELL) {
        const f = Math.min(1, elapsed / 60);
        at = { x: was.x + (at.x - was.x) * f, y: was.y + (at.y - was.y) * f };
      }
      drawn.set(runner.id, at);
    }
    drawRunner(runner, px(at.x), px(at.y));
  }
  for (const id of drawn.keys()) if (!seen.has(id)) drawn.delete(id);
}

function drawRunner(runner: RunnerView, x: number, y: number): void {
  const radius = Math.max(4, scale * 0.38);
  if (runner.it) {
    ctx.beginPath();
    ctx.arc(x, y, radius * 1.6, 0, Math.PI * 2);
    ctx.fillStyle = "rgba(228, 87, 46, .35)";
    ctx.fill();
  }
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, Math.PI * 2);
  ctx.fillStyle = runner.it ? "#e4572e" : runner.owned ? "#3a5bd9" : "#f3c969";
  ctx.fill();
  ctx.lineWidth = runner.owned ? 3 : 1.5;
  ctx.strokeStyle = runner.owned ? "#ffffff" : "#2b2f26";
  ctx.stroke();
  const size = Math.min(16, Math.max(11, Math.round(scale * 0.5)));
  ctx.font = `${size}px system-ui`;
  ctx.textAlign = "center";
  const label = `${runner.name}${runner.owned ? " (you)" : ""}${runner.it ? " · it" : ""}`;
  // Above the runner, or below it at the top edge; never cut by the sides.
  const half = ctx.measureText(label).width / 2 + 2;
  const lx = Math.min(Math.max(x, half), canvas.width - half);
  const above = y - radius - 2 - size >= 0;
  ctx.textBaseline = above ? "bottom" : "top";
  const ly = above ? y - radius - 2 : y + radius + 2;
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0, 0, 0, .6)";
  ctx.strokeText(label, lx, ly);
  ctx.fillStyle = "#ffffff";
  ctx.fillText(label, lx, ly);
}

function frame(now: number): void {
  draw(now);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// The keyboard: held keys steer, one move a tick.
window.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement) return;
  const key = Object.hasOwn(DIRECTIONS, e.key) ? e.key : e.code;
  if (!Object.hasOwn(DIRECTIONS, key)) return;
  e.preventDefault();
  tag.held.add(key);
});
window.addEventListener("keyup", (e) => {
  tag.held.delete(e.key);
  tag.held.delete(e.code);
});
window.addEventListener("blur", () => tag.held.clear());
let ticking: ReturnType<typeof setInterval> | undefined;

setUpLogin({
  version: VERSION,
  panel: "arena-panel",
  connecting(connection) {
    tag.connection = connection;
  },
  message(channel, payload) {
    if (tag.receive(channel, payload)) render();
  },
  joined(name) {
    tag.name = name;
    clearInterval(ticking);
    ticking = setInterval(() => tag.step(), 1000 / (tag.replica.tickHz ?? 20));
    canvas.focus();
    render();
  },
  closed(why) {
    clearInterval(ticking);
    tag.held.clear();
    log(`disconnected: ${why}`, "system");
    render();
  },
});
