// The built-in world's page, which `hearth serve` serves at `/`: the world
// is a game on the game API like any other. Log in as every game's page does
// (game-login.ts), then play with the world's generated bindings
// (world.generated.ts: players, NPCs, chat) over the client library's
// generic replica. Hearth moves the player: the page predicts each move at
// once (replica.moveTo), checked against the zone's walls first (ZoneMap)
// and kept just under the zone's speed (from the server's joined), one a
// tick. Stepping on a portal takes the player to another zone: the server
// sends a new joined, and the replica starts afresh. Text that came from the
// server goes into the page with textContent and fillText only. For tests,
// `window.world` holds the replica and what the page made of it.

import { ZoneMap } from "../client/src/index.js";
import type { Connection } from "../client/src/index.js";
import { RELIABLE_CHANNEL, STATE_CHANNEL, UNITS_PER_CELL } from "../client/src/game/replica.js";
import { $, logTo, setUpLogin } from "./game-login.js";
import { Player, VERSION, decodeMessage, newReplica, say, switchLine, travel } from "./world.generated.js";
import type { Message, SayScope } from "./world.generated.js";
import { ZoneCanvas, beingsOf } from "./world-view.js";
import type { Being } from "./world-view.js";

/** Messages `window.world.messages` keeps. */
const MAX_MESSAGES = 10_000;
/** Position units under the legal speed a move keeps (rounding, timer jitter). */
const MARGIN = 2;
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

/** What the page knows; `window.world`, for tests and the curious. */
class WorldPage {
  readonly replica = newReplica();
  connection?: Connection;
  name = "";
  /** The zone's name and map, from the server. */
  zone = "";
  map?: ZoneMap;
  /** Times the player entered a line (the first login, then each travel or line change). */
  entries = 0;
  readonly messages: Message[] = [];
  moves = 0;
  corrections = 0;
  readonly held = new Set<string>();

  /** Every player and NPC in view. */
  beings(): Being[] {
    return beingsOf(this.replica);
  }

  /** Position units one tick's move covers: just under this zone's walking speed. */
  stepPerTick(): number {
    const speed = this.replica.speeds[Player.KIND] ?? 0;
    return Math.floor((speed * UNITS_PER_CELL) / (this.replica.tickHz ?? 20)) - MARGIN;
  }

  receive(channel: number, payload: Uint8Array): boolean {
    try {
      if (channel === RELIABLE_CHANNEL) this.replica.applyReliable(payload);
      else if (channel === STATE_CHANNEL) this.replica.applyFrame(payload);
      else return true;
    } catch (e) {
      this.connection?.close(`a game message did not apply: ${(e as Error).message}`);
      return false;
    }
    this.tell();
    this.sendAck();
    return true;
  }

  send(bytes: Uint8Array): void {
    this.connection?.send(RELIABLE_CHANNEL, bytes);
  }

  say(scope: SayScope, to: string, text: string): void {
    this.send(say(this.replica, { scope, to, text }));
  }

  switchLine(line: number): void {
    this.send(switchLine(this.replica, { line }));
  }

  travel(zone: string): void {
    this.send(travel(this.replica, { zone }));
  }

  /** One tick's move the way the held keys point, straight on or along the wall in the way. */
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
    this.walk(dx, dy);
  }

  /** One move of at most a tick's length in direction (dx, dy): true if made. */
  walk(dx: number, dy: number): boolean {
    const id = this.replica.controlled;
    if (!this.map || id === undefined || !this.replica.actors.has(id)) return false;
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
          return true;
        }
      }
    }
    return false;
  }

  private sendAck(): void {
    const ack = this.replica.pollAck();
    if (ack) this.connection?.send(STATE_CHANNEL, ack);
  }

  private tell(): void {
    for (let event = this.replica.pollEvent(); event; event = this.replica.pollEvent()) {
      if (event.type === "joined") {
        this.entries++;
        try {
          this.map = new ZoneMap(this.replica.map);
        } catch (e) {
          this.map = undefined;
          log(`the zone's map is unreadable: ${(e as Error).message}`, "system");
        }
      } else if (event.type === "corrected") {
        this.corrections++;
      } else if (event.type === "message") {
        const message = decodeMessage(event);
        if (!message) continue;
        if (this.messages.length >= MAX_MESSAGES) this.messages.shift();
        this.messages.push(message);
        if (message.type === "entered") {
          this.zone = message.zone;
          $("zone").textContent = message.zone;
          log(`you are in ${message.zone}`, "system");
        } else if (message.type === "chat") {
          const from = message.scope === "system" ? "" : `${message.from}${message.scope === "whisper" ? ` to ${message.to}` : ""} (${message.scope}): `;
          log(`${from}${message.text}`, message.scope === "system" ? "system" : message.from === this.name ? "mine" : "");
        } else if (message.type === "refused") {
          log(`refused (${message.about}): ${message.reason}`, "quiet");
        }
      }
    }
  }
}

const world = new WorldPage();
(window as unknown as { world: WorldPage }).world = world;

function log(text: string, kind = ""): void {
  logTo("log", text, kind);
}

// The zone on the canvas.
const canvas = $<HTMLCanvasElement>("map");
const zoneCanvas = new ZoneCanvas(canvas);

function frame(): void {
  zoneCanvas.draw(world.map, world.beings());
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

window.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  const key = Object.hasOwn(DIRECTIONS, e.key) ? e.key : e.code;
  if (!Object.hasOwn(DIRECTIONS, key)) return;
  e.preventDefault();
  world.held.add(key);
});
window.addEventListener("keyup", (e) => {
  world.held.delete(e.key);
  world.held.delete(e.code);
});
window.addEventListener("blur", () => world.held.clear());

$("send").addEventListener("click", () => {
  const text = $<HTMLInputElement>("text");
  if (!text.value) return;
  world.say($<HTMLSelectElement>("scope").value as SayScope, $<HTMLInputElement>("to").value, text.value);
  text.value = "";
});
$("text").addEventListener("keydown", (e) => {
  if ((e as KeyboardEvent).key === "Enter") $("send").click();
});
$("switch").addEventListener("click", () => {
  const line = Number($<HTMLInputElement>("line").value);
  if (Number.isInteger(line) && line >= 1) world.switchLine(line);
});
$("travel").addEventListener("click", () => {
  const zone = $<HTMLInputElement>("travel-to").value.trim();
  if (zone) world.travel(zone);
});

let ticking: ReturnType<typeof setInterval> | undefined;
setUpLogin({
  version: VERSION,
  panel: "world-panel",
  connecting(connection) {
    world.connection = connection;
  },
  message(channel, payload) {
    world.receive(channel, payload);
  },
  joined(name) {
    world.name = name;
    clearInterval(ticking);
    ticking = setInterval(() => world.step(), 1000 / (world.replica.tickHz ?? 20));
    canvas.focus();
  },
  closed(why) {
    clearInterval(ticking);
    world.held.clear();
    log(`disconnected: ${why}`, "system");
  },
});
