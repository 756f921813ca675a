// What a game's own page (examples/*/web/page.ts, served by
// hearth_server::GamePage) shares: the login panel (register or log in
// through the web API), the session over the WebSocket gate for the game's
// schema version, the connection's state and why it closed, a log, and a
// look at what a replica holds of other players' hidden properties. The
// page's HTML has the elements this reads by id: name, password, login,
// register, login-error, login-panel, state, why, where, and the game's own
// panel. Text that came from the server goes in with textContent only.

import { Connection, ConnectionClosed, game } from "../client/src/index.js";
import type { GameReplica } from "../client/src/index.js";

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What a game's page does with its session. */
export interface GameSession {
  /** The schema version of the page's bindings: a server that runs another refuses the login, and says why. */
  version: string;
  /** The id of the game's panel, shown in place of the login panel once in. */
  panel: string;
  /** The session exists: it may already carry the game's first message, before its login completes. */
  connecting(connection: Connection): void;
  /** What arrived on one of the session's channels. */
  message(channel: number, payload: Uint8Array): void;
  /** The player is in the game, as `name`. */
  joined(name: string): void;
  /** The session closed, and why in words (kicked, timed out, the server's reason...). */
  closed(why: string): void;
}

/** Wires the login panel's buttons: a successful login starts the game's session. */
export function setUpLogin(session: GameSession): void {
  const logIn = (register: boolean) => void logInAs(session, register);
  $("login").addEventListener("click", () => logIn(false));
  $("register").addEventListener("click", () => logIn(true));
  $("password").addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter") logIn(false);
  });
  window.addEventListener("unhandledrejection", (e) => {
    if (e.reason instanceof ConnectionClosed) $("login-error").textContent = e.reason.message;
  });
}

/** A JSON POST to the web API; throws with the API's message when it refuses. */
export async function api(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (!response.ok) throw new Error((json.message as string) ?? `${response.status}`);
  return json;
}

async function logInAs(session: GameSession, register: boolean): Promise<void> {
  const name = $<HTMLInputElement>("name").value.trim();
  const password = $<HTMLInputElement>("password").value;
  $("login-error").textContent = "";
  try {
    if (register) await api("/api/register", { name, password });
    const tokens = await api("/api/login", { name, password });
    await enter(session, tokens.access_token as string, tokens.name as string);
  } catch (e) {
    $("login-error").textContent = (e as Error).message;
  }
}

async function enter(session: GameSession, token: string, name: string): Promise<void> {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setState("connecting");
  const connection = new Connection(`${scheme}://${location.host}/ws`, { credentials: { kind: "token", token }, options: `?schema=${session.version}` });
  // Listening before the login completes: the game's first message may come with it.
  connection.on("message", ({ channel, payload }) => session.message(channel, payload));
  connection.on("state", (state) => setState(state));
  connection.on("closed", ({ code, reason }) => {
    setState("closed");
    const why = closeText(code, reason);
    $("why").textContent = why;
    session.closed(why);
  });
  session.connecting(connection);
  await connection.start();
  $("where").textContent = name;
  $("login-panel").classList.add("hidden");
  $(session.panel).classList.remove("hidden");
  session.joined(name);
}

function closeText(code: number, reason: string): string {
  const kinds: Record<number, string> = { 1: "kicked", 6: "the server is shutting down", 7: "logged in elsewhere", 8: "timed out" };
  return reason || kinds[code] || `closed (code ${code})`;
}

function setState(state: string): void {
  const element = $("state");
  element.textContent = state;
  element.className = `state-${state}`;
}

/** Lines a log keeps. */
const MAX_LOG = 500;

/** Adds a line to the log box `id` (`kind`: its class), keeping the newest lines in view. */
export function logTo(id: string, text: string, kind = ""): void {
  const box = $(id);
  const line = document.createElement("div");
  line.textContent = text;
  if (kind) line.className = kind;
  box.append(line);
  while (box.childElementCount > MAX_LOG) box.firstElementChild!.remove();
  box.scrollTop = box.scrollHeight;
}

/** A property only an actor's owner (or the server) may see, as a replica holds it for an actor this player does not own. */
export interface HiddenValue {
  actor: number;
  kind: string;
  prop: string;
  value: string;
  /** Only the type's default: nothing was ever received for it. */
  isDefault: boolean;
}

/** Every owner-only and server-only property of every actor this player does not own, read from the schema (any game's). */
export function hiddenValues(replica: GameReplica): HiddenValue[] {
  const out: HiddenValue[] = [];
  for (const [id, actor] of replica.actors) {
    if (actor.owned) continue;
    const kind = replica.schema.kinds[actor.kind]!;
    kind.props.forEach((prop, index) => {
      if (prop.visibility === "everyone") return;
      const value = actor.values[index]!;
      out.push({ actor: id, kind: kind.name, prop: prop.name, value: String(value), isDefault: game.sameValue(value, game.defaultValue(prop.ty)) });
    });
  }
  return out;
}
