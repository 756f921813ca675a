// The game page: log in through the web API, play over the WebSocket gate
// with @hearth/client, draw the zone on a canvas, chat, switch lines and
// zones, and say honestly what the connection is doing.

import { Connection, ConnectionClosed, WorldClient, cellOf, connect, world } from "../client/src/index.js";
import { WorldView, chatLine, logLine } from "./view.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>("world");

let game: { connection: Connection; world: WorldClient; name: string } | undefined;

async function api(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (!response.ok) throw new Error((json.message as string) ?? `${response.status}`);
  return json;
}

async function logIn(register: boolean): Promise<void> {
  const name = $<HTMLInputElement>("name").value.trim();
  const password = $<HTMLInputElement>("password").value;
  $("login-error").textContent = "";
  try {
    if (register) await api("/api/register", { name, password });
    const tokens = await api("/api/login", { name, password });
    await play(tokens.access_token as string, tokens.name as string);
  } catch (e) {
    $("login-error").textContent = (e as Error).message;
  }
}

async function play(token: string, name: string): Promise<void> {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setState("connecting");
  const connection = await connect(`${scheme}://${location.host}/ws`, { credentials: { kind: "token", token } });
  const client = new WorldClient(connection);
  game = { connection, world: client, name };
  (window as unknown as { hearth: unknown }).hearth = game;
  $("login-panel").classList.add("hidden");
  canvas.classList.remove("hidden");
  canvas.focus();
  setState(connection.state);
  connection.on("state", (state) => setState(state));
  connection.on("closed", ({ code, reason }) => {
    setState("closed");
    $("why").textContent = closeText(code, reason);
    log(`disconnected: ${closeText(code, reason)}`, "system");
  });
  client.on((event) => {
    switch (event.type) {
      case "entered":
        log(`entered ${event.zone}, line ${event.line}`, "system");
        fillLines(event.line);
        break;
      case "chat":
        log(...chatLine(event));
        break;
      case "refused":
        log(event.reason, "refused");
        break;
    }
  });
  void loadZones();
}

function closeText(code: number, reason: string): string {
  const kinds: Record<number, string> = { 1: "kicked", 6: "the server is shutting down", 7: "logged in elsewhere", 8: "timed out" };
  return reason || kinds[code] || `closed (code ${code})`;
}

function setState(state: string): void {
  const el = $("state");
  el.textContent = state;
  el.className = `state-${state}`;
}

function log(text: string, kind = ""): void {
  logLine($("chat-log"), text, kind);
}

function sendChat(): void {
  const input = $<HTMLInputElement>("chat-input");
  const text = input.value.trim();
  if (!game || !text) return;
  const whisper = /^\/w(?:hisper)?\s+(\S+)\s+(.+)$/.exec(text);
  if (whisper) game.world.whisper(whisper[1]!, whisper[2]!);
  else game.world.say(text, Number($<HTMLSelectElement>("chat-scope").value) as world.ChatScope.Zone | world.ChatScope.Line);
  input.value = "";
}

/** Lines 1 to 4 and the two either side of the current one: a few options, whatever the line number. */
function fillLines(current: number): void {
  const lines = new Set([1, 2, 3, 4]);
  for (let line = current - 2; line <= current + 2; line++) if (line >= 1 && line <= world.MAX_LINE) lines.add(line);
  const options = [...lines].sort((a, b) => a - b).map((line) => new Option(`line ${line}`, String(line), false, line === current));
  $<HTMLSelectElement>("line-select").replaceChildren(...options);
}

async function loadZones(): Promise<void> {
  try {
    const status = await (await fetch("/api/world")).json();
    const zones = [...new Set((status.lines as { zone: string }[]).map((l) => l.zone))];
    const select = $<HTMLSelectElement>("zone-select");
    select.replaceChildren(...zones.map((z) => new Option(z, z, false, z === game?.world.replica.entered?.zone)));
  } catch {
    // The switcher stays empty; the game goes on.
  }
}

// Drawing, every animation frame.
const view = new WorldView(canvas);
function frame(): void {
  requestAnimationFrame(frame);
  if (game) view.draw(game.world.replica, performance.now(), game.world.target);
}

// Status panel: rates from the counters' differences.
let last = { at: performance.now(), bytesIn: 0, bytesOut: 0 };
setInterval(() => {
  if (!game) return;
  const stats = game.connection.stats;
  const now = performance.now();
  const seconds = (now - last.at) / 1000;
  const rateIn = (stats.bytesIn - last.bytesIn) / seconds;
  const rateOut = (stats.bytesOut - last.bytesOut) / seconds;
  last = { at: now, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut };
  $("transport").textContent = game.connection.transport;
  $("rtt").textContent = stats.smoothedRttMs === undefined ? "–" : `${stats.smoothedRttMs.toFixed(0)} ms`;
  $("loss").textContent = "0 % (a stream loses nothing)";
  $("rate").textContent = `${(rateIn / 1024).toFixed(1)} / ${(rateOut / 1024).toFixed(1)} KiB/s`;
  const entered = game.world.replica.entered;
  const place = entered ? `${entered.zone}, line ${entered.line}` : "–";
  $("place").textContent = place;
  $("where").textContent = entered ? `${game.name} in ${place}` : game.name;
}, 500);

// Input.
const keys = new Set<string>();
function steer(): void {
  if (!game) return;
  const dx = (keys.has("ArrowRight") || keys.has("d") ? 1 : 0) - (keys.has("ArrowLeft") || keys.has("a") ? 1 : 0);
  const dy = (keys.has("ArrowDown") || keys.has("s") ? 1 : 0) - (keys.has("ArrowUp") || keys.has("w") ? 1 : 0);
  game.world.walk(dx, dy);
}
canvas.addEventListener("keydown", (e) => {
  if (keys.has(e.key)) return;
  keys.add(e.key);
  steer();
});
canvas.addEventListener("keyup", (e) => {
  keys.delete(e.key);
  steer();
});
canvas.addEventListener("click", (e) => {
  if (!game) return;
  const [cx, cy] = cellOf(view.positionAt(e.clientX, e.clientY));
  game.world.moveTo({ x: cx * world.UNITS_PER_CELL + 50, y: cy * world.UNITS_PER_CELL + 50 });
  canvas.focus();
});
$("login").addEventListener("click", () => void logIn(false));
$("register").addEventListener("click", () => void logIn(true));
$("password").addEventListener("keydown", (e) => {
  if ((e as KeyboardEvent).key === "Enter") void logIn(false);
});
$("chat-send").addEventListener("click", sendChat);
$("chat-input").addEventListener("keydown", (e) => {
  if ((e as KeyboardEvent).key === "Enter") sendChat();
});
$("line-select").addEventListener("change", (e) => game?.world.switchLine(Number((e.target as HTMLSelectElement).value)));
$("zone-select").addEventListener("change", (e) => game?.world.travel((e.target as HTMLSelectElement).value));
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof ConnectionClosed) $("login-error").textContent = e.reason.message;
});
requestAnimationFrame(frame);
