// Colyseus 0.18 peer for Hearth's "crowd" benchmark: the load generator.
//
//   node load.mjs --url ws://127.0.0.1:2567 --clients 1000 --ramp 10 --secs 30 \
//                 --move-every 0.5 [--warmup 5]
//
// Connects N players with the official 0.18 client SDK (@colyseus/sdk), spread
// evenly over --ramp seconds, each doing joinOrCreate("crowd") (the server's
// matchmaker puts them all in one room). Every player:
//   - sends "move" {x, y} every --move-every seconds, jittered uniformly to
//     0.5x..1.5x: the first target is a random floor cell, each later one a
//     random floor cell within 5 cells of the previous target (clamped);
//   - sends "ping" {t: performance.now()} once a second and records the RTT
//     of each "pong";
//   - counts the bytes and messages it receives.
// After --ramp + --warmup seconds the measured window of --secs seconds
// starts; RTT samples, bytes, messages and moves count only inside it.
//
// stdout carries ONE JSON line at the end; progress goes to stderr.
//
// ---- Light clients: the no-op serializer ---------------------------------
// A full SDK client decodes every state patch into a local replica of all
// players (@colyseus/schema's Decoder). With 1000 players in one room that is
// 1000 replicas of 1000 players on the load generator's single core, which
// measures the load generator, not the server. Like Hearth's "light" bots,
// these clients keep the protocol honest (they join through the matchmaker,
// complete the JOIN handshake, receive every state/patch frame off the socket
// and count its bytes, send real messages and answer nothing out of band) but
// do not keep a replica.
//
// The cleanest hook the 0.18 SDK offers is its serializer registry: the room
// picks its serializer by the id the server announces in the JOIN_ROOM
// handshake ("schema") via getSerializer(id), unless a root schema class was
// passed to joinOrCreate (we pass none). `registerSerializer("schema", ...)`
// (a public SDK export) replaces that entry for this process with a class
// whose handshake/setState/patch do nothing, so ROOM_STATE and
// ROOM_STATE_PATCH frames are received in full and then dropped undecoded.
// Everything else (ROOM_DATA messages such as "pong", decoded with msgpack)
// goes through the SDK unchanged.
//
// ---- Byte counting -----------------------------------------------------------
// Counted at the SDK's WebSocket `message` event: the SDK's WebSocketTransport
// (the `ws` package on Node 20) hands every incoming WebSocket message, as an
// ArrayBuffer, to Room#onMessageCallback; a Room subclass (returned by a
// Client subclass's createRoom) adds its byteLength before passing it on.
// That is the WebSocket message payload: every byte the server sent in a
// message, before any parsing. Not included: the 2-10 byte WebSocket frame
// header (server frames are unmasked and uncompressed: ws-transport turns
// permessage-deflate off), TCP/IP headers, and the HTTP matchmaking request
// and WebSocket upgrade. An estimate including frame headers is printed to
// stderr.

import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { Client, Room, registerSerializer } from "@colyseus/sdk";

// Keep stdout for the one JSON line: the SDK logs some events with
// console.info / console.log.
console.log = console.info = (...a) => console.error(...a);

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:2567" },
    clients: { type: "string", default: "100" },
    ramp: { type: "string", default: "5" },
    secs: { type: "string", default: "10" },
    "move-every": { type: "string", default: "0.5" },
    warmup: { type: "string", default: "5" },
    room: { type: "string", default: "crowd" },
  },
});
const N = Math.max(0, Math.trunc(Number(args.clients)));
const RAMP_S = Number(args.ramp);
const SECS = Number(args.secs);
const MOVE_EVERY_S = Number(args["move-every"]);
const WARMUP_S = Number(args.warmup);
for (const [k, v] of Object.entries({ clients: N, ramp: RAMP_S, secs: SECS, "move-every": MOVE_EVERY_S, warmup: WARMUP_S })) {
  if (!Number.isFinite(v) || v < 0) {
    console.error(`bad --${k}`);
    process.exit(2);
  }
}

// ---- the map (same as server.mjs) -----------------------------------------
const CELL = 100;
const CELLS = 40;
const FLOOR_LO = 1, FLOOR_HI = CELLS - 2; // floor cells 1..38
const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
const clampCell = (c) => Math.min(FLOOR_HI, Math.max(FLOOR_LO, c));
const cellCentre = (c) => c * CELL + CELL / 2;

// ---- the no-op serializer -------------------------------------------------
class NoDecodeSerializer {
  setState(_buffer, _it) {}
  getState() { return null; }
  patch(_buffer, _it) {}
  teardown() {}
  handshake(_bytes, _it) {}
}
registerSerializer("schema", NoDecodeSerializer);

// ---- measurement state ------------------------------------------------------
const errors = Object.create(null);
const addError = (key) => { errors[key] = (errors[key] ?? 0) + 1; };
const shortReason = (e) => String(e?.message ?? e ?? "unknown").replace(/\s+/g, " ").slice(0, 80);

let measuring = false;
let rttSamples = [];
let movesInWindow = 0;
let pingsSentInWindow = 0;

// Per-player counters, updated by the Room subclass below.
class CountingRoom extends Room {
  constructor(name, rootSchema) {
    super(name, rootSchema);
    this.bench = { bytes: 0, messages: 0, frameBytes: 0 };
    // A benchmark player that drops should show up as an error, not be
    // silently reconnected by the SDK.
    this.reconnection.enabled = false;
  }
  onMessageCallback(event) {
    if (measuring) {
      const len = event.data.byteLength;
      this.bench.bytes += len;
      this.bench.messages += 1;
      this.bench.frameBytes += len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
    }
    super.onMessageCallback(event);
  }
}
class CountingClient extends Client {
  createRoom(roomName, rootSchema) {
    return new CountingRoom(roomName, rootSchema);
  }
}

// ---- one player ---------------------------------------------------------------
const players = [];
let connected = 0, failed = 0, live = 0, stopping = false;
const roomIds = new Map();

class Player {
  constructor(index) {
    this.index = index;
    this.room = null;
    this.lastTarget = null; // {cx, cy}; unknown until the first move
    this.timers = [];
    this.left = false;
  }

  async start() {
    const client = new CountingClient(args.url);
    let room;
    try {
      room = await client.joinOrCreate(args.room, {});
    } catch (e) {
      failed++;
      addError(`join: ${shortReason(e)}`);
      return;
    }
    if (stopping) {
      room.leave(true).catch(() => {});
      return;
    }
    this.room = room;
    connected++;
    live++;
    roomIds.set(room.roomId, (roomIds.get(room.roomId) ?? 0) + 1);

    room.onMessage("pong", (msg) => {
      if (!measuring || typeof msg?.t !== "number") return;
      rttSamples.push(performance.now() - msg.t);
    });
    room.onError((code, message) => addError(`room error ${code}: ${shortReason(message)}`));
    room.onLeave((code) => {
      this.left = true;
      live--;
      this.stopTimers();
      if (!stopping) addError(`left early: code ${code}`);
    });

    this.scheduleMove(true);
    // ping once a second, at a random phase
    const firstPing = setTimeout(() => {
      this.ping();
      this.timers.push(setInterval(() => this.ping(), 1000));
    }, Math.random() * 1000);
    this.timers.push(firstPing);
  }

  send(type, payload) {
    try {
      this.room.send(type, payload);
      return true;
    } catch (e) {
      addError(`send ${type}: ${shortReason(e)}`);
      return false;
    }
  }

  ping() {
    if (this.left || stopping) return;
    if (this.send("ping", { t: performance.now() }) && measuring) pingsSentInWindow++;
  }

  scheduleMove(first) {
    // First move soon after joining (within one interval), then jittered.
    const base = MOVE_EVERY_S * 1000;
    const delay = first ? Math.random() * base : base * (0.5 + Math.random());
    const timer = setTimeout(() => {
      this.timers = this.timers.filter((t) => t !== timer);
      if (this.left || stopping) return;
      this.move();
      this.scheduleMove(false);
    }, delay);
    this.timers.push(timer);
  }

  move() {
    let cx, cy;
    if (this.lastTarget === null) {
      cx = randInt(FLOOR_LO, FLOOR_HI);
      cy = randInt(FLOOR_LO, FLOOR_HI);
    } else {
      cx = clampCell(this.lastTarget.cx + randInt(-5, 5));
      cy = clampCell(this.lastTarget.cy + randInt(-5, 5));
    }
    this.lastTarget = { cx, cy };
    if (this.send("move", { x: cellCentre(cx), y: cellCentre(cy) }) && measuring) movesInWindow++;
  }

  stopTimers() {
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers = [];
  }
}

// ---- run ------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = performance.now();
const elapsed = () => ((performance.now() - t0) / 1000).toFixed(1);

console.error(`load: ${N} clients -> ${args.url} room "${args.room}", ramp ${RAMP_S}s, warmup ${WARMUP_S}s, window ${SECS}s, move every ${MOVE_EVERY_S}s`);

const joins = [];
for (let i = 0; i < N; i++) {
  const p = new Player(i);
  players.push(p);
  const at = N > 1 ? (RAMP_S * 1000 * i) / (N - 1) : 0;
  joins.push(new Promise((resolve) => setTimeout(() => p.start().then(resolve, (e) => { addError(`start: ${shortReason(e)}`); resolve(); }), at)));
}

const progress = setInterval(() => {
  console.error(`[${elapsed()}s] connected ${connected} live ${live} failed ${failed}${measuring ? " (measuring)" : ""}`);
}, 2000);

await sleep((RAMP_S + WARMUP_S) * 1000);
const pending = N - connected - failed;
if (pending > 0) console.error(`warning: ${pending} joins still pending at window start`);
const liveAtStart = live;
measuring = true;
const windowStart = performance.now();
console.error(`[${elapsed()}s] window start: ${liveAtStart} live clients, ${roomIds.size} room(s)`);

await sleep(SECS * 1000);
measuring = false;
const windowSecs = (performance.now() - windowStart) / 1000;
const liveAtEnd = live;
clearInterval(progress);
console.error(`[${elapsed()}s] window end (${windowSecs.toFixed(2)}s): ${liveAtEnd} live clients`);

// ---- results ----------------------------------------------------------------------
let bytes = 0, messages = 0, frameBytes = 0;
const perClientBytes = [];
for (const p of players) {
  if (!p.room) continue;
  bytes += p.room.bench.bytes;
  messages += p.room.bench.messages;
  frameBytes += p.room.bench.frameBytes;
  perClientBytes.push(p.room.bench.bytes);
}
const denom = Math.max(1, liveAtStart) * windowSecs;
rttSamples.sort((a, b) => a - b);
const pct = (q) => {
  if (rttSamples.length === 0) return null;
  const i = Math.min(rttSamples.length - 1, Math.max(0, Math.ceil(q * rttSamples.length) - 1));
  return round3(rttSamples[i]);
};
function round3(x) { return Math.round(x * 1000) / 1000; }
if (roomIds.size > 1) addError(`clients spread over ${roomIds.size} rooms`);
if (pending > 0) errors[`joins pending at window start`] = pending;

const result = {
  clients: N,
  connected,
  failed,
  rtt_p50_ms: pct(0.5),
  rtt_p99_ms: pct(0.99),
  rtt_samples: rttSamples.length,
  bytes_in_per_client_per_s: round3(bytes / denom),
  messages_in_per_client_per_s: round3(messages / denom),
  moves_per_s: round3(movesInWindow / windowSecs),
  errors,
};

perClientBytes.sort((a, b) => a - b);
console.error(
  `detail: live at window start ${liveAtStart}, at end ${liveAtEnd}; ` +
  `pings sent in window ${pingsSentInWindow}, pongs counted ${rttSamples.length}; ` +
  `bytes incl. ws frame headers/client/s ${(frameBytes / denom).toFixed(1)}; ` +
  `per-client bytes in window min ${perClientBytes[0] ?? 0} max ${perClientBytes[perClientBytes.length - 1] ?? 0}; ` +
  `rtt max ${rttSamples.length ? round3(rttSamples[rttSamples.length - 1]) : null} ms`,
);

// ---- close every client (bounded), then print and exit ------------------------------
stopping = true;
for (const p of players) p.stopTimers();
const leaving = players
  .filter((p) => p.room && !p.left)
  .map((p) => p.room.leave(true).catch(() => {}));
const closed = await Promise.race([
  Promise.all(leaving).then(() => true),
  sleep(5000).then(() => false),
]);
if (!closed) console.error("warning: not every client closed within 5 s");
// Joins still in flight are abandoned (their rooms are left as they resolve).
void joins;

process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
