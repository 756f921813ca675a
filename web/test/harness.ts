// What the integration tests share: a real `hearth serve` in a temporary
// data directory (one small zone with one spawn point, so players start in
// view of each other), a real `cards serve` (the card example, with its own
// page), accounts through the web API, a TCP relay that can cut
// connections, and bounded waits.

import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

declare const __WEB_DIR__: string;
export const WEB_DIR = __WEB_DIR__;
/** Where cargo put the binaries: CARGO_TARGET_DIR (relative to the repository, as scripts/web-test runs cargo there), else target/. */
const TARGET = resolve(WEB_DIR, "..", process.env.CARGO_TARGET_DIR ?? "target");
export const BIN = process.env.HEARTH_BIN ?? join(TARGET, "debug/hearth");
/** The card example's binary (`cargo build -p cards`). */
export const CARDS_BIN = process.env.CARDS_BIN ?? join(TARGET, "debug/cards");
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

/** Starts `hearth serve`; `admins` are created first with `hearth admin create` (password PASSWORD). */
export async function startServer(admins: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-web-"));
  const [game, webPort] = [await freePort(), await freePort()];
  const rows = Array.from({ length: 10 }, (_, y) => `#${y === 5 ? ".........S.........." : ".".repeat(20)}#`);
  const map = ["#".repeat(22), ...rows, "#".repeat(22)].join("\n");
  writeFileSync(join(dataDir, "zones.toml"), `[[zone]]\nname = "arena"\nnpcs = 2\nmap = """\n${map}\n"""\n`);
  const config = join(dataDir, "hearth.toml");
  writeFileSync(config, `[world]\nzones = "${join(dataDir, "zones.toml")}"\n[accounts]\nregister_burst = 50\n`);
  for (const name of admins) {
    execFileSync(BIN, ["admin", "create", name, "--config", config, "--data-dir", dataDir], { input: `${PASSWORD}\n`, stdio: ["pipe", "ignore", "ignore"] });
  }
  return serve(BIN, config, dataDir, game, webPort, env);
}

/** Starts `cards serve` (the card example, which serves its own page at `/`) on free ports in a temporary data directory. */
export async function startCards(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-cards-"));
  const [game, webPort] = [await freePort(), await freePort()];
  const config = join(dataDir, "hearth.toml");
  writeFileSync(config, `[accounts]\nregister_burst = 50\n`);
  return serve(CARDS_BIN, config, dataDir, game, webPort, env);
}

/** Runs `bin serve` with Hearth's usual flags and waits for its health check. */
async function serve(bin: string, config: string, dataDir: string, game: number, webPort: number, env: Record<string, string>): Promise<Server> {
  const args = ["serve", "--config", config, "--port", String(game), "--web-port", String(webPort), "--data-dir", dataDir];
  const child = spawn(bin, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", process.env.HEARTH_TEST_LOG ? "inherit" : "ignore"],
  });
  // A binary that is missing or stops says so at once, not after the wait.
  let failed: Error | undefined;
  child.on("error", (e) => (failed = new Error(`${bin}: ${e.message} (build it: cargo build -p hearth -p cards; CARGO_TARGET_DIR is followed)`)));
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
