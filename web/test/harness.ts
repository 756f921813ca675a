// What the integration tests share: a real `hearth serve` in a temporary
// data directory (one small zone with one spawn point, so players start in
// view of each other), a player of its world over the TypeScript client, a
// real example game's `serve` (cards, tag: each with its own page, checked
// the same way), accounts through the web API, a TCP relay that can cut
// connections, and bounded waits.

import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Socket, createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { Connection, RELIABLE_CHANNEL, STATE_CHANNEL, UNITS_PER_CELL, stepTowards } from "../client/src/index.js";
import type { Pos } from "../client/src/index.js";
import { Npc, Player, VERSION, decodeMessage, newReplica, say } from "../pages/world.generated.js";
import type { Message, SayScope } from "../pages/world.generated.js";

declare const __WEB_DIR__: string;
export const WEB_DIR = __WEB_DIR__;
/** Where cargo put the binaries: CARGO_TARGET_DIR (relative to the repository, as scripts/web-test runs cargo there), else target/. */
const TARGET = resolve(WEB_DIR, "..", process.env.CARGO_TARGET_DIR ?? "target");
export const BIN = process.env.HEARTH_BIN ?? join(TARGET, "debug/hearth");
/** The example games' binaries (`cargo build -p cards -p tag`). */
export const CARDS_BIN = process.env.CARDS_BIN ?? join(TARGET, "debug/cards");
export const TAG_BIN = process.env.TAG_BIN ?? join(TARGET, "debug/tag");
export const PASSWORD = "correct horse battery";

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() => resolve(port));
    });
  });
}

export async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Server {
  web: string;
  game: number;
  dataDir: string;
  process: ChildProcess;
  stop(): void;
}

/** The map of startServer's one zone, "arena": twenty cells by ten inside the walls, one spawn point in the middle. */
export const ARENA_MAP = [
  "#".repeat(22),
  ...Array.from({ length: 10 }, (_, y) => `#${y === 5 ? ".........S.........." : ".".repeat(20)}#`),
  "#".repeat(22),
].join("\n");

/** Starts `hearth serve`; `admins` are created first with `hearth admin create` (password PASSWORD), in the database `env` names, if any. */
export async function startServer(admins: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-web-"));
  const [game, webPort] = [await freePort(), await freePort()];
  writeFileSync(join(dataDir, "zones.toml"), `[[zone]]\nname = "arena"\nnpcs = 2\nmap = """\n${ARENA_MAP}\n"""\n`);
  const config = join(dataDir, "hearth.toml");
  writeFileSync(config, `[world]\nzones = "${join(dataDir, "zones.toml")}"\n[accounts]\nregister_burst = 50\n`);
  for (const name of admins) {
    execFileSync(BIN, ["admin", "create", name, "--config", config, "--data-dir", dataDir], {
      input: `${PASSWORD}\n`,
      stdio: ["pipe", "ignore", "ignore"],
      env: { ...process.env, ...env },
    });
  }
  return serve(BIN, config, dataDir, game, webPort, env);
}

/** Starts `cards serve` (the card example, which serves its own page at `/`) on free ports in a temporary data directory. */
export async function startCards(env: Record<string, string> = {}): Promise<Server> {
  return startGame(CARDS_BIN, () => [], env);
}

/**
 * Starts an example game's `serve` (which serves the game's own page at `/`)
 * on free ports in a temporary data directory; `flags` gives the game's own
 * flags, and may write files into the data directory first.
 */
export async function startGame(bin: string, flags: (dataDir: string) => string[] = () => [], env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), `hearth-${basename(bin)}-`));
  const [game, webPort] = [await freePort(), await freePort()];
  const config = join(dataDir, "hearth.toml");
  writeFileSync(config, `[accounts]\nregister_burst = 50\n`);
  return serve(bin, config, dataDir, game, webPort, env, flags(dataDir));
}

/**
 * Checks what an example game's server serves as its page: `examples/NAME/web`'s
 * HTML at `/`, its bundle at `/game-page.js` and its stylesheet at
 * `/game-page.css`, with the built-in pages' security headers; the built-in
 * pages' stylesheet, which the page also uses, is still there.
 */
export async function checkGamePage(web: string, example: string): Promise<void> {
  const page = await fetch(`http://${web}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(
    page.headers.get("content-security-policy"),
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  const dir = join(WEB_DIR, "../examples", example, "web");
  const stale = `the binary serves another page than examples/${example}/web's: rebuild it (cargo build -p ${example})`;
  assert.ok((await page.text()) === readFileSync(join(dir, "page.html"), "utf8"), stale);

  const script = await fetch(`http://${web}/game-page.js`);
  assert.equal(script.status, 200);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(script.headers.get("x-content-type-options"), "nosniff");
  // The binary embeds the committed bundle (node build.mjs --check keeps that current).
  assert.ok((await script.text()) === readFileSync(join(dir, "dist/page.js"), "utf8"), stale);
  const style = await fetch(`http://${web}/game-page.css`);
  assert.equal(style.status, 200);
  assert.equal(style.headers.get("content-type"), "text/css; charset=utf-8");
  assert.ok((await style.text()) === readFileSync(join(dir, "page.css"), "utf8"), stale);
  assert.equal((await fetch(`http://${web}/assets/style.css`)).status, 200);
}

/** Runs `bin serve` with Hearth's usual flags and waits for its health check. */
async function serve(bin: string, config: string, dataDir: string, game: number, webPort: number, env: Record<string, string>, flags: string[] = []): Promise<Server> {
  const args = ["serve", "--config", config, "--port", String(game), "--web-port", String(webPort), "--data-dir", dataDir, ...flags];
  const child = spawn(bin, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", process.env.HEARTH_TEST_LOG ? "inherit" : "ignore"],
  });
  // A binary that is missing or stops says so at once, not after the wait.
  let failed: Error | undefined;
  child.on("error", (e) => (failed = new Error(`${bin}: ${e.message} (build it: cargo build -p hearth -p cards -p tag; CARGO_TARGET_DIR is followed)`)));
  child.on("exit", (code, signal) => (failed ??= new Error(`${bin} serve stopped (${code ?? signal})`)));
  const web = `127.0.0.1:${webPort}`;
  await until(
    "the server's health check",
    () => {
      if (failed) throw failed;
      return fetch(`http://${web}/healthz`).then((r) => r.ok, () => false);
    },
    30_000,
  );
  return {
    web,
    game,
    dataDir,
    process: child,
    stop() {
      child.kill("SIGTERM");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An SDK player's process (`cards play`, `tag play`): what it printed so far, and waits that fail at once, with its words, when it stops. */
export class PlayerProcess {
  /** Its standard output and error so far. */
  out = "";
  err = "";
  /** Its exit code, once it has exited (null: killed by a signal). */
  exit: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout!.on("data", (chunk) => (this.out += chunk));
    child.stderr!.on("data", (chunk) => (this.err += chunk));
    child.on("exit", (code) => (this.exit = code));
  }

  /** Everything it said, for a failure's message. */
  said(): string {
    return `${this.name} said:\n${this.out}\n${this.err}`;
  }

  /** Waits for `check`, failing at once (with its words) if the player has stopped and `check` still fails. */
  async waitFor(what: string, check: () => Promise<boolean> | boolean, ms?: number): Promise<void> {
    try {
      await until(what, async () => {
        if (this.exit !== undefined && !(await check())) throw new Error(`${this.name} exited (${this.exit})`);
        return check();
      }, ms);
    } catch (e) {
      throw new Error(`${(e as Error).message}; ${this.said()}`);
    }
  }

  /** Waits for it to exit by itself. */
  async exited(ms = 15_000): Promise<number | null> {
    await this.waitFor(`${this.name} to exit`, () => this.exit !== undefined, ms);
    return this.exit!;
  }
}

/** Runs `bin play ARGS` (a Rust SDK player) with the password PASSWORD. */
export function startPlayer(bin: string, args: string[]): PlayerProcess {
  const child = spawn(bin, ["play", ...args], { env: { ...process.env, HEARTH_PASSWORD: PASSWORD }, stdio: ["ignore", "pipe", "pipe"] });
  return new PlayerProcess(`${basename(bin)} play`, child);
}

export async function api(web: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`http://${web}${path}`, { method: body === undefined ? "GET" : "POST", body: body === undefined ? undefined : JSON.stringify(body), headers });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : {} };
}

/** Registers (unless it exists) and logs in; returns an access token. */
export async function account(web: string, name: string, register = true): Promise<string> {
  if (register) {
    const registered = await api(web, "/api/register", { name, password: PASSWORD });
    assert.equal(registered.status, 201, JSON.stringify(registered.json));
  }
  const login = await api(web, "/api/login", { name, password: PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.json));
  return login.json.access_token as string;
}

/** A TCP relay in front of `target` that can cut every connection, as a network failure would. */
export async function cuttableRelay(target: string): Promise<{ port: number; cut: (blocked: boolean) => void; close: () => void }> {
  const sockets = new Set<Socket>();
  const [host, port] = target.split(":");
  let blocked = false;
  const relay = createServer((inbound) => {
    if (blocked) return inbound.resetAndDestroy();
    const outbound = new Socket().connect(Number(port), host!);
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => [inbound, outbound].forEach((s) => (s.destroy(), sockets.delete(s)));
    inbound.on("error", end).on("close", end);
    outbound.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", () => r()));
  return {
    port: (relay.address() as { port: number }).port,
    /** Resets every connection; while `blocked`, new ones are reset too. */
    cut: (block: boolean) => {
      blocked = block;
      sockets.forEach((s) => s.resetAndDestroy());
    },
    close: () => relay.close(),
  };
}

/** Position units under the zone's legal speed a move keeps, as the world's page does (rounding, timer jitter). */
const MOVE_MARGIN = 2;

/** Someone in a world player's view, where the server has them. */
export interface InView {
  id: number;
  name: string;
  npc: boolean;
  x: number;
  y: number;
}

/**
 * A player of the built-in world over the TypeScript client, without a
 * page: the world's generated replica fed from the connection and
 * acknowledged as the world's page does, every message the server sent it,
 * and moves predicted once a tick just under the zone's speed.
 */
export class WorldPlayer {
  readonly replica = newReplica();
  readonly messages: Message[] = [];
  corrections = 0;
  private walking?: ReturnType<typeof setInterval>;

  constructor(
    readonly name: string,
    readonly connection: Connection,
  ) {
    // Listening before the login completes: the world's first message may come with it.
    connection.on("message", ({ channel, payload }) => this.receive(channel, payload));
    connection.on("closed", () => clearInterval(this.walking));
  }

  /** The zone the server last said the player entered. */
  get zone(): string | undefined {
    const entered = this.messages.filter((m) => m.type === "entered");
    return entered[entered.length - 1]?.zone;
  }

  /** Chat heard, as "from: text" ("[system] text" for the server's). */
  get chat(): string[] {
    return this.messages.flatMap((m) => (m.type !== "chat" ? [] : [m.scope === "system" ? `[system] ${m.text}` : `${m.from}: ${m.text}`]));
  }

  /** The reasons of every refusal. */
  get refused(): string[] {
    return this.messages.flatMap((m) => (m.type === "refused" ? [m.reason] : []));
  }

  /** Every player and NPC in view. */
  inView(): InView[] {
    const at = (id: number) => this.replica.serverPosition(id) ?? { x: NaN, y: NaN };
    return [
      ...Player.all(this.replica).map((p) => ({ id: p.id, name: p.name, npc: false, ...at(p.id) })),
      ...Npc.all(this.replica).map((n) => ({ id: n.id, name: n.name, npc: true, ...at(n.id) })),
    ];
  }

  /** The player named `name` in view. */
  find(name: string): InView | undefined {
    return this.inView().find((actor) => !actor.npc && actor.name === name);
  }

  /** Where this player's moves have put them (predicted ahead of the server). */
  get position(): Pos | undefined {
    const id = this.replica.controlled;
    return id === undefined ? undefined : this.replica.position(id);
  }

  say(scope: SayScope, text: string, to = ""): void {
    this.connection.send(RELIABLE_CHANNEL, say(this.replica, { scope, to, text }));
  }

  /** Walks straight to `goal`, a move a tick; resolves once the last move is made (the server confirms it a little later). */
  walkTo(goal: Pos): Promise<void> {
    clearInterval(this.walking);
    const step = Math.floor(((this.replica.speeds[Player.KIND] ?? 0) * UNITS_PER_CELL) / (this.replica.tickHz ?? 20)) - MOVE_MARGIN;
    return new Promise((done) => {
      this.walking = setInterval(() => {
        const at = this.position;
        if (!at) return;
        if (at.x === goal.x && at.y === goal.y) {
          clearInterval(this.walking);
          return done();
        }
        const next = stepTowards(at, goal, step);
        this.replica.moveTo(next.x, next.y);
        this.sendAck();
      }, 1000 / (this.replica.tickHz ?? 20));
    });
  }

  private receive(channel: number, payload: Uint8Array): void {
    try {
      if (channel === RELIABLE_CHANNEL) this.replica.applyReliable(payload);
      else if (channel === STATE_CHANNEL) this.replica.applyFrame(payload);
      else return;
    } catch (e) {
      this.connection.close(`a game message did not apply: ${(e as Error).message}`);
      return;
    }
    for (let event = this.replica.pollEvent(); event; event = this.replica.pollEvent()) {
      if (event.type === "corrected") this.corrections++;
      const message = decodeMessage(event);
      if (message) this.messages.push(message);
    }
    this.sendAck();
  }

  private sendAck(): void {
    const ack = this.replica.pollAck();
    if (ack) this.connection.send(STATE_CHANNEL, ack);
  }
}

/**
 * Registers `name` (unless `register` is false), logs in to the world over
 * a WebSocket (`url`, the server's own by default) and waits until the
 * player is in view of themself.
 */
export async function worldPlayer(server: Server, name: string, { url = `ws://${server.web}/ws`, register = true } = {}): Promise<WorldPlayer> {
  const token = await account(server.web, name, register);
  const connection = new Connection(url, { credentials: { kind: "token", token }, options: `?schema=${VERSION}` });
  const player = new WorldPlayer(name, connection);
  await connection.start();
  await until(`${name} in the world`, () => player.zone !== undefined && player.position !== undefined);
  return player;
}

