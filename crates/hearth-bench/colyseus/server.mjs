// Colyseus 0.18 peer for Hearth's "crowd" benchmark: the server.
//
//   node server.mjs --port 2567
//
// One room type, "crowd": every player walks in one shared 40 x 40 cell map
// (100 units per cell, border cells are walls). A plain, idiomatic 0.18 room:
// a Schema state with a MapSchema of players, a "move" message that sets a
// target, a 50 ms simulation interval that walks each player toward its
// target, and the default broadcast of state patches every 50 ms.
//
// stdout carries exactly one line, "ready", once the server listens; every
// log line (Colyseus' own included) goes to stderr.

import { parseArgs } from "node:util";
import { Room, Server } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { Encoder, schema, t } from "@colyseus/schema";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "2567" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const PORT = Number(args.port);

// ---- the map --------------------------------------------------------------
const CELL = 100;            // units per cell
const CELLS = 40;            // 40 x 40 cells; 0 and 39 are walls
const FLOOR_MIN = 1 * CELL;  // first floor unit
const FLOOR_MAX = (CELLS - 1) * CELL - 1; // last floor unit (cell 38)
const TICK_MS = 50;          // simulation interval
const SPEED = 5 * CELL;      // 5 cells per second = 500 units/s
const STEP = (SPEED * TICK_MS) / 1000; // 25 units per tick

const clampFloor = (v) => Math.min(FLOOR_MAX, Math.max(FLOOR_MIN, Math.trunc(v)));
const randomFloorCellCentre = () =>
  (1 + Math.floor(Math.random() * (CELLS - 2))) * CELL + CELL / 2;

// Facing in 256ths of a turn (0 = +x, 64 = +y), the same unit Hearth uses.
function facingTowards(dx, dy) {
  const turns = Math.atan2(dy, dx) / (2 * Math.PI);
  return Math.round((((turns % 1) + 1) % 1) * 256) & 0xff;
}

// ---- state ----------------------------------------------------------------
// The full state is about 33 bytes per player (so ~330 KB at maxClients), and
// @colyseus/schema's default 16 KB encode buffer overflows from ~500 players
// on: it then warns on stderr and encodes every join's full state twice. Its
// warning tells the developer to raise Encoder.BUFFER_SIZE, which we do up
// front for a room of up to 10000 players.
Encoder.BUFFER_SIZE = 512 * 1024;

const Player = schema({
  x: t.int32(),
  y: t.int32(),
  facing: t.uint8(),
}, "Player");

const CrowdState = schema({
  players: t.map(Player),
}, "CrowdState");

// ---- the room -------------------------------------------------------------
class CrowdRoom extends Room {
  maxClients = 10000;
  autoDispose = false;
  // 20 patches per second. (`patchRate = ms` is the 0.18 spelling of
  // `setPatchRate(ms)`, which @colyseus/core 0.18 keeps as a deprecated alias.)
  patchRate = 50;
  state = new CrowdState();

  // Server-only data (not synchronised): each player's target.
  targets = new Map();

  messages = {
    move: (client, message) => {
      const target = this.targets.get(client.sessionId);
      if (!target || !message) return;
      const x = Number(message.x), y = Number(message.y);
      if (!Number.isFinite(x) || !Number.isFinite(y)) return;
      target.x = clampFloor(x);
      target.y = clampFloor(y);
    },
    ping: (client, message) => {
      client.send("pong", { t: message?.t });
    },
  };

  onCreate() {
    // (`setTimestep` is the 0.18 name of `setSimulationInterval`, which
    // @colyseus/core 0.18 keeps as a deprecated alias forwarding to it.)
    this.setTimestep(() => this.update(), TICK_MS);
  }

  onJoin(client) {
    const x = randomFloorCellCentre();
    const y = randomFloorCellCentre();
    this.state.players.set(client.sessionId, new Player({ x, y, facing: 0 }));
    this.targets.set(client.sessionId, { x, y });
  }

  onLeave(client) {
    this.state.players.delete(client.sessionId);
    this.targets.delete(client.sessionId);
  }

  // Walk every player STEP units in a straight line toward its target
  // (snapping onto it when it is that close), turning to face the way it goes.
  update() {
    for (const [sessionId, player] of this.state.players) {
      const target = this.targets.get(sessionId);
      const dx = target.x - player.x;
      const dy = target.y - player.y;
      if (dx === 0 && dy === 0) continue;
      const distance = Math.sqrt(dx * dx + dy * dy);
      const facing = facingTowards(dx, dy);
      if (distance <= STEP) {
        player.x = target.x;
        player.y = target.y;
      } else {
        player.x += Math.trunc((dx * STEP) / distance);
        player.y += Math.trunc((dy * STEP) / distance);
      }
      if (player.facing !== facing) player.facing = facing;
    }
  }
}

// ---- the server -------------------------------------------------------------
// Keep stdout for the single "ready" line: send Colyseus' logger to stderr.
const toStderr = (...a) => console.error(...a);

const server = new Server({
  transport: new WebSocketTransport(),
  greet: false,
  logger: { trace: toStderr, debug: toStderr, info: toStderr, warn: toStderr, error: toStderr },
});
server.define("crowd", CrowdRoom);

await server.listen(PORT, args.host);
process.stdout.write("ready\n");
