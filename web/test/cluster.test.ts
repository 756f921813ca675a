// The dashboard of a cluster: two `hearth serve` nodes on a real NATS server
// and a real PostgreSQL (started by the project's scripts), a player on the
// second; the first node's /admin, in headless Chromium, lists both nodes,
// marks itself, and shows the second's session and its busiest line. Zone
// names from another node's record are shown as text.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Browser, chromium } from "playwright-core";
import { PASSWORD, Server, WEB_DIR, startServer, until, worldPlayer } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const servers: Server[] = [];
let browser: Browser;

/** A script's one line of output (scripts/nats-up, scripts/postgres-up: a URL). */
function scriptUrl(name: string): string {
  return execFileSync(join(WEB_DIR, "..", "scripts", name), { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
}

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  for (const server of servers) server.stop();
});

test("either node's dashboard lists every node of the cluster with its sessions and lines", async () => {
  const nats = scriptUrl("nats-up");
  const database = scriptUrl("postgres-up");
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const env = (node: string) => ({
    HEARTH_CLUSTER: nats,
    HEARTH_CLUSTER_NAME: `web-${run}`,
    HEARTH_NODE: node,
    HEARTH_DATABASE_URL: database,
  });
  const admin = `root_${run}`;
  servers.push(await startServer([admin], env("w1")));
  servers.push(await startServer([], env("w2")));
  const [first, second] = servers as [Server, Server];
  const player = await worldPlayer(second, `p_${run}`);

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`http://${first.web}/admin`);
  await page.getByTestId("admin-name").fill(admin);
  await page.getByTestId("admin-password").fill(PASSWORD);
  await page.getByTestId("admin-login").click();
  const rows = page.locator("[data-testid=admin-cluster] tbody tr");
  await until("both nodes listed", () => rows.count().then((n) => n === 2), 20_000);
  const text = await until(
    "the second node's player and line",
    async () => {
      const all = await rows.allTextContents();
      const second = all.find((row) => row.startsWith("w2_"));
      return second !== undefined && /arena 1 \(1\)/.test(second) ? all : undefined;
    },
    20_000,
  );
  assert.ok(text.some((row) => /^w1_[0-9a-f]{12} \(this node\)/.test(row)), text.join("\n"));
  const secondRow = text.find((row) => row.startsWith("w2_"))!;
  assert.ok(secondRow.includes(second.web), secondRow);
  assert.match(await page.locator("#cluster-title").textContent() ?? "", /Cluster web-\S+: 2 nodes/);
  player.connection.close("test over");
  await page.close();
});
