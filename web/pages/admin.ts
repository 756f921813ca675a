// The admin dashboard: live figures from /api/admin/overview (an
// administrator's token required), charts that scroll as they update, the
// cluster's nodes from /api/admin/cluster (when this server is a node of
// one), and the operator's actions: kick, announce, lock.

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const HISTORY = 120;

let token = "";
interface Series {
  label: string;
  colour: string;
  values: number[];
}
const charts: Record<string, Series[]> = {
  sessions: [
    { label: "live", colour: "#b4461c", values: [] },
    { label: "udp", colour: "#29335c", values: [] },
    { label: "stream", colour: "#669bbc", values: [] },
  ],
  bandwidth: [
    { label: "in", colour: "#29335c", values: [] },
    { label: "out", colour: "#b4461c", values: [] },
  ],
  tick: [
    { label: "p50", colour: "#29335c", values: [] },
    { label: "p99", colour: "#b4461c", values: [] },
  ],
  logins: [
    { label: "accepted", colour: "#2a7a2a", values: [] },
    { label: "refused", colour: "#a00", values: [] },
  ],
};
let previous: { at: number; bytesIn: number; bytesOut: number; accepted: number; refused: number } | undefined;

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function logIn(): Promise<void> {
  $("admin-error").textContent = "";
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: $<HTMLInputElement>("admin-name").value.trim(), password: $<HTMLInputElement>("admin-password").value }),
  });
  const json = await response.json();
  if (!response.ok) {
    $("admin-error").textContent = json.message ?? `login failed (${response.status})`;
    return;
  }
  token = json.access_token;
  const first = await call("GET", "/api/admin/overview");
  if (!first.ok) {
    $("admin-error").textContent = (await first.json()).message ?? `refused (${first.status})`;
    token = "";
    return;
  }
  $("who").textContent = `signed in as ${json.name}`;
  $("admin-login").classList.add("hidden");
  $("dashboard").classList.remove("hidden");
  $("actions").classList.remove("hidden");
  show(await first.json());
  void refreshRecordings();
  setInterval(() => void refresh(), 1000);
  setInterval(() => void refreshRecordings(), 5000);
}

async function refresh(): Promise<void> {
  const response = await call("GET", "/api/admin/overview");
  if (response.ok) show(await response.json());
  const cluster = await call("GET", "/api/admin/cluster");
  if (cluster.ok) showCluster(await cluster.json());
}

interface NodeRecord {
  id: string;
  web_addr: string;
  game_addr: string;
  sessions: number;
  lines: number;
  tick_p99_us: number;
  line_list?: { zone: string; number: number; players: number }[];
  /** Players in its lines (visitors from other nodes included). */
  players?: number;
  /** Draining (`hearth admin drain`): it hands its players on, takes none. */
  draining?: boolean;
}

/** Every live node of the cluster, this one marked; hidden for a server alone. */
function showCluster(c: { cluster: string | null; node?: string; nodes?: NodeRecord[] }): void {
  if (!c.cluster) return;
  $("cluster").classList.remove("hidden");
  $("cluster-title").textContent = `Cluster ${c.cluster}: ${c.nodes?.length ?? 0} nodes`;
  const nodes = [...(c.nodes ?? [])].sort((a, b) => a.id.localeCompare(b.id));
  $("cluster-table").replaceChildren(
    ...nodes.map((n) => {
      const tr = document.createElement("tr");
      const busiest = (n.line_list ?? []).map((l) => `${l.zone} ${l.number} (${l.players})`).join(", ");
      const name = `${n.id}${n.id === c.node ? " (this node)" : ""}${n.draining ? " (draining)" : ""}`;
      tr.append(
        ...[name, n.web_addr, n.game_addr, n.sessions, n.players ?? 0, n.lines, `${(n.tick_p99_us / 1000).toFixed(2)} ms`, busiest].map((v) => cell(String(v))),
      );
      return tr;
    }),
  );
}

function push(series: Series, value: number): void {
  series.values.push(value);
  if (series.values.length > HISTORY) series.values.shift();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function show(o: any): void {
  const now = performance.now();
  const s = o.sessions;
  const logins = o.logins ?? {};
  const accepted = logins.accepted ?? 0;
  const refused = Object.entries(logins).reduce((n, [k, v]) => (k === "accepted" ? n : n + (v as number)), 0);
  push(charts.sessions![0]!, s.live);
  push(charts.sessions![1]!, s.with_udp);
  push(charts.sessions![2]!, s.with_stream);
  if (previous) {
    const seconds = Math.max(0.001, (now - previous.at) / 1000);
    push(charts.bandwidth![0]!, Math.max(0, (s.bytes_in - previous.bytesIn) / seconds));
    push(charts.bandwidth![1]!, Math.max(0, (s.bytes_out - previous.bytesOut) / seconds));
    push(charts.logins![0]!, accepted - previous.accepted);
    push(charts.logins![1]!, refused - previous.refused);
  }
  previous = { at: now, bytesIn: s.bytes_in, bytesOut: s.bytes_out, accepted, refused };
  const lines = (o.world?.lines ?? []) as { zone: string; number: number; players: number; npcs: number; tick_p50_us: number; tick_p99_us: number; bytes_out_per_player_s: number }[];
  push(charts.tick![0]!, Math.max(0, ...lines.map((l) => l.tick_p50_us / 1000)));
  push(charts.tick![1]!, Math.max(0, ...lines.map((l) => l.tick_p99_us / 1000)));
  for (const [name, series] of Object.entries(charts)) drawLines($<HTMLCanvasElement>(`chart-${name}`), series);
  drawBars($<HTMLCanvasElement>("chart-rtt"), s.rtt_histogram, [...o.rtt_buckets_ms.map((b: number) => `≤${b}`), "more"]);
  const t = o.transports;
  const q = o.handler_queue ?? {};
  $("sessions-table").innerHTML = "";
  const rows: [string, string | number][] = [
    ["sessions live", s.live],
    ["in the world (joined)", s.joined],
    ["with a UDP link", s.with_udp],
    ["with a stream (TCP or WebSocket)", s.with_stream],
    ["detached (waiting for a resume)", s.detached],
    ["streams open", t.streams_open],
    ["TCP connections accepted", t.tcp_accepted],
    ["WebSocket connections accepted", t.websocket_accepted],
    ["UDP datagrams in / out", `${t.udp_datagrams_in} / ${t.udp_datagrams_out}`],
    ["UDP datagrams handed to another shard / dropped there", `${t.udp_forwarded} / ${t.udp_forward_dropped}`],
    ["handler queues: events waiting (bytes)", `${q.waiting_events ?? 0} (${q.waiting_bytes ?? 0} B)`],
    ["handler queues: deferred / unreliable dropped", `${q.deferred ?? 0} / ${q.dropped_unreliable ?? 0}`],
    ["handler queues: sessions shed (their events)", `${q.sessions_shed ?? 0} (${q.shed_events ?? 0})`],
    ["process CPU (of its cores) / game step (of its tick)", `${((o.load?.process_cpu_permille ?? 0) / 10).toFixed(1)} % / ${((o.load?.game_step_permille ?? 0) / 10).toFixed(1)} %`],
    ["byte budgets sent (shedding below 100 %)", `${((o.load?.budget_permille ?? 1000) / 10).toFixed(1)} %`],
    ["refusing newcomers", o.load?.refusing_newcomers_s ? `yes, for ${o.load.refusing_newcomers_s} s` : "no"],
    ["accounts", o.accounts ?? "?"],
    ["uptime", `${o.uptime_s} s`],
  ];
  for (const [label, value] of rows) {
    const tr = document.createElement("tr");
    tr.append(cell(label), cell(String(value)));
    $("sessions-table").append(tr);
  }
  const heaviest = (s.heaviest ?? []) as { session: string; packets_in: number; packets_out: number; messages_in: number; messages_out: number; bytes_in: number; bytes_out: number; rtt_ms: number | null }[];
  $("heaviest-table").replaceChildren(
    ...heaviest.map((h) => {
      const tr = document.createElement("tr");
      tr.append(
        ...[h.session, `${h.packets_in} / ${h.packets_out}`, `${h.messages_in} / ${h.messages_out}`, `${h.bytes_in} / ${h.bytes_out}`, h.rtt_ms === null ? "-" : `${h.rtt_ms} ms`].map((v) => cell(v)),
      );
      return tr;
    }),
  );
  $("lines-table").replaceChildren(
    ...lines.map((l) => {
      const tr = document.createElement("tr");
      tr.append(
        ...[l.zone, l.number, l.players, l.npcs, `${(l.tick_p50_us / 1000).toFixed(2)} ms`, `${(l.tick_p99_us / 1000).toFixed(2)} ms`, l.bytes_out_per_player_s].map((v) => cell(String(v))),
      );
      return tr;
    }),
  );
}

function cell(text: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function drawLines(canvas: HTMLCanvasElement, series: Series[]): void {
  const g = canvas.getContext("2d")!;
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  g.font = "11px system-ui";
  g.fillStyle = "#6b625a";
  g.fillText(formatNumber(max), 4, 12);
  series.forEach((s, i) => {
    g.strokeStyle = s.colour;
    g.lineWidth = 1.5;
    g.beginPath();
    s.values.forEach((v, x) => {
      const px = (x / Math.max(30, s.values.length - 1)) * width;
      const py = height - 4 - (v / max) * (height - 20);
      if (x === 0) g.moveTo(px, py);
      else g.lineTo(px, py);
    });
    g.stroke();
    g.fillStyle = s.colour;
    g.fillText(`${s.label} ${formatNumber(s.values.at(-1) ?? 0)}`, 60 + i * 110, 12);
  });
}

function drawBars(canvas: HTMLCanvasElement, counts: number[], labels: string[]): void {
  const g = canvas.getContext("2d")!;
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const max = Math.max(1, ...counts);
  const bar = width / counts.length;
  g.font = "11px system-ui";
  counts.forEach((count, i) => {
    const h = (count / max) * (height - 30);
    g.fillStyle = "#b4461c";
    g.fillRect(i * bar + 4, height - 16 - h, bar - 8, h);
    g.fillStyle = "#222";
    g.fillText(String(count), i * bar + 6, height - 20 - h);
    g.fillText(labels[i] ?? "", i * bar + 4, height - 3);
  });
}

function formatNumber(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(0)}k` : n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

async function act(path: string, body: unknown, done: string): Promise<void> {
  const response = await call("POST", path, body);
  $("action-result").textContent = response.ok ? done : ((await response.json()).message ?? `failed (${response.status})`);
}

async function refreshRecordings(): Promise<void> {
  const response = await call("GET", "/api/admin/recordings");
  if (!response.ok) return;
  const { files, cost } = await response.json();
  $("recording-cost").textContent =
    `${cost.active} running; ${cost.messages} messages, ${(cost.bytes / 1024).toFixed(0)} KiB written in ` +
    `${(cost.cpu_us / 1000).toFixed(1)} ms of the lines' time over ${cost.recorded_player_seconds.toFixed(0)} player-seconds`;
  $("recordings-table").replaceChildren(
    ...files.map((f: { file: string; bytes: number }) => {
      const tr = document.createElement("tr");
      const link = document.createElement("button");
      link.textContent = "download";
      link.className = "secondary";
      link.dataset.testid = `download-${f.file}`;
      link.addEventListener("click", () => void download(f.file));
      const remove = document.createElement("button");
      remove.textContent = "delete";
      remove.dataset.testid = `delete-${f.file}`;
      remove.addEventListener("click", async () => {
        const response = await call("DELETE", `/api/admin/recordings/${encodeURIComponent(f.file)}`);
        $("action-result").textContent = response.ok ? `${f.file} deleted` : `cannot delete ${f.file} (${response.status})`;
        void refreshRecordings();
      });
      const action = document.createElement("td");
      action.append(link, " ", remove);
      tr.append(cell(f.file), cell(`${(f.bytes / 1024).toFixed(1)} KiB`), action);
      return tr;
    }),
  );
}

/** Fetches a recording with the administrator's token and saves it as a file. */
async function download(file: string): Promise<void> {
  const response = await call("GET", `/api/admin/recordings/${encodeURIComponent(file)}`);
  if (!response.ok) {
    $("action-result").textContent = `cannot download ${file} (${response.status})`;
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = file;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

$("record").addEventListener("click", async () => {
  const name = $<HTMLInputElement>("record-name").value.trim();
  const zone = $<HTMLInputElement>("record-zone").value.trim();
  const line = Number($<HTMLInputElement>("record-line").value);
  const seconds = Number($<HTMLInputElement>("record-seconds").value);
  const request = name ? { name, seconds } : { zone, line, seconds };
  const what = name || `${zone} line ${line}`;
  const response = await call("POST", "/api/admin/record", request);
  const json = await response.json();
  $("action-result").textContent = response.ok ? `recording ${what} for ${seconds} s into ${json.file}` : (json.message ?? `failed (${response.status})`);
  void refreshRecordings();
});
$("admin-login-button").addEventListener("click", () => void logIn());
$("admin-password").addEventListener("keydown", (e) => {
  if ((e as KeyboardEvent).key === "Enter") void logIn();
});
$("kick").addEventListener("click", () => {
  const name = $<HTMLInputElement>("kick-name").value.trim();
  void act("/api/admin/kick", { name, reason: $<HTMLInputElement>("kick-reason").value }, `${name} was kicked`);
});
$("announce").addEventListener("click", () => void act("/api/admin/announce", { text: $<HTMLInputElement>("announce-text").value }, "announced"));
$("lock").addEventListener("click", () => {
  const name = $<HTMLInputElement>("lock-name").value.trim();
  void act("/api/admin/lock", { name, locked: true }, `${name} is locked`);
});
$("unlock").addEventListener("click", () => {
  const name = $<HTMLInputElement>("lock-name").value.trim();
  void act("/api/admin/lock", { name, locked: false }, `${name} is unlocked`);
});
