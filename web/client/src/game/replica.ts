// The wire of a schema-declared game and a client's replica of it: the
// rules are crates/hearth-replica/src/game_wire.rs's and game_replica.rs's.
// Generic: any game's schema; generated bindings (hearth codegen) only add
// names and types on top.

import { DecodeError, Reader, Writer } from "../bytes.js";
import { KindSpec, MAX_SPEED, Schema, Value, defaultValue, readValue, readVarintBig, visibleMask, writeValue, writeVarintBig } from "./schema.js";

export const RELIABLE_CHANNEL = 10;
export const STATE_CHANNEL = 11;

const CODE = {
  joined: 0x31,
  spawn: 0x32,
  despawn: 0x33,
  set: 0x34,
  message: 0x35,
  frame: 0x36,
  clientMessage: 0x37,
  clientAck: 0x38,
  control: 0x39,
  clientMoves: 0x3a,
} as const;

const MAX_VERSION = 64;
/** Longest map a `joined` may carry: the largest zone (1024 cells a side), rows and newlines. */
const MAX_MAP_BYTES = 1024 * 1025;
/** Moves one client message carries at most. */
export const MAX_MOVES = 16;
/** Position units per cell. */
export const UNITS_PER_CELL = 100;
/** Largest coordinate, in position units. */
const MAX_COORDINATE = 1024 * UNITS_PER_CELL;

/** A move of the controlled actor, numbered. */
export interface GameMove {
  seq: number;
  x: number;
  y: number;
}
/** Actors a replica holds at most (as the Rust replica). */
export const MAX_REPLICA_ACTORS = 65_536;
const MAX_EVENTS = 4096;

export type GameItem =
  | { type: "joined"; version: string; tickHz: number; map: string; viewRadius: number; speeds: number[]; entry: number }
  | { type: "spawn"; id: number; kind: number; owned: boolean; mask: bigint; values: Value[] }
  | { type: "despawn"; id: number }
  | { type: "set"; id: number; mask: bigint; values: Value[] }
  | { type: "message"; index: number; values: Value[] }
  | { type: "control"; id: number | undefined };

/** A frame's header: the tick, the newest move the server took, and whether it refused one. */
export interface FrameHeader {
  tick: number;
  inputAck: number;
  corrected: boolean;
  /** The player's entry into the line that sent it (as its joined). */
  entry: number;
}

export interface GameUpdate {
  id: number;
  mask: bigint;
  values: Value[];
}

type KindOf = (id: number) => number | undefined;

function readMasked(r: Reader, kind: KindSpec, owned: boolean): { mask: bigint; values: Value[] } {
  const mask = readVarintBig(r, "property mask");
  if ((mask & ~visibleMask(kind, owned)) !== 0n) throw new DecodeError("property mask out of range");
  const values: Value[] = [];
  kind.props.forEach((prop, index) => {
    if (mask & (1n << BigInt(index))) values.push(readValue(r, prop.ty));
  });
  return { mask, values };
}

function writeMasked(w: Writer, kind: KindSpec, mask: bigint, values: Value[]): void {
  writeVarintBig(w, mask);
  let at = 0;
  kind.props.forEach((prop, index) => {
    if (mask & (1n << BigInt(index))) writeValue(w, prop.ty, values[at++]!);
  });
}

function kindAt(schema: Schema, index: number): KindSpec {
  const kind = schema.kinds[index];
  if (!kind) throw new DecodeError("actor kind out of range");
  return kind;
}

/** Per kind of the schema, its speed in the zone: 0 for a kind that does not move, 1 to the largest speed for one that does. */
function readSpeeds(r: Reader, schema: Schema): number[] {
  if (r.varint("kind count") !== schema.kinds.length) throw new DecodeError("kind count out of range");
  return schema.kinds.map((kind) => {
    const speed = r.varint32("speed");
    const legal = kind.movement ? speed >= 1 && speed <= MAX_SPEED : speed === 0;
    if (!legal) throw new DecodeError("speed out of range");
    return speed;
  });
}

function readItem(r: Reader, schema: Schema, kindOf: KindOf): GameItem {
  const code = r.u8("game item type");
  switch (code) {
    case CODE.joined:
      return {
        type: "joined",
        version: r.str(MAX_VERSION, "schema version"),
        tickHz: r.varint32("tick rate"),
        map: r.str(MAX_MAP_BYTES, "map"),
        viewRadius: r.varint32("view radius"),
        speeds: readSpeeds(r, schema),
        entry: r.u8("entry"),
      };
    case CODE.control: {
      const id = r.varint32("actor id");
      return { type: "control", id: id === 0 ? undefined : id };
    }
    case CODE.spawn: {
      const id = r.varint32("actor id");
      const kind = r.varint32("actor kind");
      const owned = r.u8("owned");
      if (owned > 1) throw new DecodeError("owned out of range");
      return { type: "spawn", id, kind, owned: owned === 1, ...readMasked(r, kindAt(schema, kind), owned === 1) };
    }
    case CODE.despawn:
      return { type: "despawn", id: r.varint32("actor id") };
    case CODE.set: {
      const id = r.varint32("actor id");
      const kind = kindOf(id);
      if (kind === undefined) throw new DecodeError("a Set for an unknown actor");
      return { type: "set", id, ...readMasked(r, kindAt(schema, kind), true) };
    }
    case CODE.message: {
      const index = r.varint32("message index");
      const spec = schema.messages[index];
      if (!spec || spec.direction !== "to_client") throw new DecodeError("message index out of range");
      return { type: "message", index, values: spec.fields.map((f) => readValue(r, f.ty)) };
    }
    default:
      throw new DecodeError(`unknown game item ${code}`);
  }
}

/** The schema version a reliable message announces when its first item is `joined` (read before anything else). */
export function joinedVersion(bytes: Uint8Array): string | undefined {
  try {
    const r = new Reader(bytes);
    r.varint32("tick");
    if (r.varint("item count") === 0 || r.u8("game item type") !== CODE.joined) return undefined;
    return r.str(MAX_VERSION, "schema version");
  } catch {
    return undefined;
  }
}

/** A reliable server message: its tick and items (actors spawned earlier in it are known to its later items). */
export function decodeGameReliable(bytes: Uint8Array, schema: Schema, kindOf: KindOf): { tick: number; items: GameItem[] } {
  const r = new Reader(bytes);
  const tick = r.varint("tick");
  const n = r.varint("item count");
  if (n > r.remaining / 2) throw new DecodeError("item count out of range");
  // What this message's earlier items did to the actors, ahead of what the
  // replica knew: a spawn makes an id known with its kind, a despawn unknown
  // (a set after a despawn and a respawn is read with the new kind's types).
  const changed = new Map<number, number | undefined>();
  // After a joined item (the player entered another line), nothing the replica knew stays: only this message's spawns.
  let rejoined = false;
  const known = (id: number) => (changed.has(id) ? changed.get(id) : rejoined ? undefined : kindOf(id));
  const items: GameItem[] = [];
  for (let i = 0; i < n; i++) {
    const item = readItem(r, schema, known);
    if (item.type === "spawn") {
      if (known(item.id) !== undefined) throw new DecodeError(`spawn of live actor ${item.id}`);
      changed.set(item.id, item.kind);
    } else if (item.type === "despawn") {
      changed.set(item.id, undefined);
    } else if (item.type === "joined") {
      rejoined = true;
      changed.clear();
    }
    items.push(item);
  }
  r.finish("game message");
  return { tick, items };
}

export function encodeGameReliable(tick: number, items: GameItem[], schema: Schema, kindOf: KindOf): Uint8Array {
  const w = new Writer();
  w.varint(tick).varint(items.length);
  const changed = new Map<number, number | undefined>();
  let rejoined = false;
  const known = (id: number) => (changed.has(id) ? changed.get(id) : rejoined ? undefined : kindOf(id));
  for (const item of items) {
    switch (item.type) {
      case "joined":
        w.u8(CODE.joined).str(item.version).varint(item.tickHz).str(item.map).varint(item.viewRadius);
        w.varint(item.speeds.length);
        for (const speed of item.speeds) w.varint(speed);
        w.u8(item.entry);
        rejoined = true;
        changed.clear();
        break;
      case "control":
        w.u8(CODE.control).varint(item.id ?? 0);
        break;
      case "spawn":
        w.u8(CODE.spawn).varint(item.id).varint(item.kind).u8(item.owned ? 1 : 0);
        writeMasked(w, kindAt(schema, item.kind), item.mask, item.values);
        changed.set(item.id, item.kind);
        break;
      case "despawn":
        w.u8(CODE.despawn).varint(item.id);
        changed.set(item.id, undefined);
        break;
      case "set": {
        const kind = known(item.id);
        if (kind === undefined) throw new RangeError(`unknown actor ${item.id}`);
        w.u8(CODE.set).varint(item.id);
        writeMasked(w, kindAt(schema, kind), item.mask, item.values);
        break;
      }
      case "message":
        w.u8(CODE.message).varint(item.index);
        schema.messages[item.index]!.fields.forEach((f, i) => writeValue(w, f.ty, item.values[i]!));
    }
  }
  return w.finish();
}

/**
 * The entry a frame carries (a count of the player's entries into lines, as its line's joined carries), read
 * before anything else; undefined if the bytes are not a frame.
 */
export function frameEntry(bytes: Uint8Array): number | undefined {
  try {
    const r = new Reader(bytes);
    if (r.u8("frame type") !== CODE.frame) return undefined;
    r.varint("tick");
    r.varint("input ack");
    r.u8("corrected");
    return r.u8("entry");
  } catch {
    return undefined;
  }
}

/** A frame: its header, the updates read, and whether every update could be read (an unknown actor stops it). */
export function decodeGameFrame(bytes: Uint8Array, schema: Schema, kindOf: KindOf): { header: FrameHeader; updates: GameUpdate[]; complete: boolean } {
  const r = new Reader(bytes);
  if (r.u8("frame type") !== CODE.frame) throw new DecodeError("not a game frame");
  const tick = r.varint("tick");
  const inputAck = r.varint32("input ack");
  const corrected = r.u8("corrected");
  if (corrected > 1) throw new DecodeError("corrected out of range");
  const header = { tick, inputAck, corrected: corrected === 1, entry: r.u8("entry") };
  const n = r.varint("update count");
  if (n > r.remaining / 2) throw new DecodeError("update count out of range");
  const updates: GameUpdate[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.varint32("actor id");
    const kind = kindOf(id);
    if (kind === undefined) return { header, updates, complete: false };
    updates.push({ id, ...readMasked(r, kindAt(schema, kind), true) });
  }
  r.finish("game frame");
  return { header, updates, complete: true };
}

/** Writes a frame (for tests and tools; the server writes its own). */
export function encodeGameFrame(header: FrameHeader, updates: GameUpdate[], schema: Schema, kindOf: KindOf): Uint8Array {
  const w = new Writer();
  w.u8(CODE.frame).varint(header.tick).varint(header.inputAck).u8(header.corrected ? 1 : 0).u8(header.entry).varint(updates.length);
  for (const update of updates) {
    const kind = kindOf(update.id);
    if (kind === undefined) throw new RangeError(`unknown actor ${update.id}`);
    w.varint(update.id);
    writeMasked(w, kindAt(schema, kind), update.mask, update.values);
  }
  return w.finish();
}

/** A message the schema declares `to_server`, for the reliable channel. */
export function encodeGameMessage(schema: Schema, name: string, values: Value[]): Uint8Array {
  const index = schema.messages.findIndex((m) => m.name === name && m.direction === "to_server");
  const spec = schema.messages[index];
  if (!spec) throw new RangeError(`${name} is not a message to the server`);
  if (values.length !== spec.fields.length) throw new RangeError(`${name} has ${spec.fields.length} fields`);
  const w = new Writer();
  w.u8(CODE.clientMessage).varint(index);
  spec.fields.forEach((f, i) => writeValue(w, f.ty, values[i]!));
  return w.finish();
}

/**
 * The acknowledgement of the newest frame applied completely, and in `earlier` which frames of the ticks before it
 * were applied too (bit i: tick `tick - 1 - i`), for the state channel.
 */
export function encodeGameAck(tick: number, earlier = 0): Uint8Array {
  return new Writer().u8(CODE.clientAck).varint(tick).varint(earlier >>> 0).finish();
}

/** The acknowledgement and the controlled actor's moves not yet acknowledged (oldest first), for the state channel. */
export function encodeGameMoves(ack: number, earlier: number, moves: readonly GameMove[]): Uint8Array {
  const w = new Writer().u8(CODE.clientMoves).varint(ack).varint(earlier >>> 0);
  const sent = moves.slice(-MAX_MOVES);
  w.u8(sent.length);
  for (const m of sent) w.varint(m.seq).varint(clampCoordinate(m.x)).varint(clampCoordinate(m.y));
  return w.finish();
}

function clampCoordinate(v: number): number {
  return Math.min(Math.max(Math.round(v), 0), MAX_COORDINATE);
}

export interface GameActor {
  kind: number;
  owned: boolean;
  /** Every property's value by index (those not seen keep their default). */
  values: Value[];
}

export type GameEvent =
  | { type: "joined"; tickHz: number }
  | { type: "spawned"; id: number }
  | { type: "changed"; id: number; mask: bigint }
  | { type: "despawned"; id: number }
  | { type: "message"; name: string; values: Value[] }
  /** The player's moves steer this actor from now on (undefined: none). */
  | { type: "controlling"; id: number | undefined }
  /** The server refused a move: the controlled actor is back where the server has it. */
  | { type: "corrected"; x: number; y: number };

export class GameReplica {
  readonly actors = new Map<number, GameActor>();
  tickHz?: number;
  /** The zone's map (rows of cells; empty for a game without one) and how far the player sees moving actors, in cells. */
  map = "";
  viewRadius = 0;
  /** Per kind, its speed in this zone in cells per second (0: it does not move), from the server's joined: the speed moves keep to. */
  speeds: number[] = [];
  /** The player's entry into its line, from joined: frames of another entry are another line's. */
  entry = 0;
  /** The actor this player's moves steer. */
  controlled?: number;
  eventsDropped = 0;
  /** The frames applied completely and the moves not taken yet: what the client sends on the state channel. */
  private readonly state = new StateSender();
  private readonly events: GameEvent[] = [];

  constructor(readonly schema: Schema) {}

  /** The actor's value of the property named `prop`. */
  value(id: number, prop: string): Value | undefined {
    const actor = this.actors.get(id);
    if (!actor) return undefined;
    const index = this.schema.kinds[actor.kind]!.props.findIndex((p) => p.name === prop);
    return index < 0 ? undefined : actor.values[index];
  }

  pollEvent(): GameEvent | undefined {
    return this.events.shift();
  }

  /** Where the server last said an actor of a moving kind is (its first two properties). */
  serverPosition(id: number): { x: number; y: number } | undefined {
    const actor = this.actors.get(id);
    if (!actor || !this.schema.kinds[actor.kind]!.movement) return undefined;
    return { x: Number(actor.values[0]), y: Number(actor.values[1]) };
  }

  /** Where an actor of a moving kind is: for the controlled actor, where this client's moves put it (predicted). */
  position(id: number): { x: number; y: number } | undefined {
    const last = this.state.newestMove();
    if (id === this.controlled && last) return { x: last.x, y: last.y };
    return this.serverPosition(id);
  }

  /** Moves made and not acknowledged yet. */
  get pendingMoves(): number {
    return this.state.pendingMoves;
  }

  /** Moves the controlled actor to (x, y) at once (prediction) and queues the move; send what `pollAck` returns. */
  moveTo(x: number, y: number): void {
    if (this.controlled === undefined) throw new Error("this player controls no actor");
    if (!this.actors.has(this.controlled)) throw new Error("the controlled actor is not in view yet");
    this.state.pushMove(x, y);
  }

  /** Applies a reliable message; throws (and the session should close) on anything malformed or a schema mismatch. */
  applyReliable(bytes: Uint8Array): void {
    const version = joinedVersion(bytes);
    if (version !== undefined && version !== this.schema.version) {
      throw new Error(`the server runs the game's schema version ${version}, this client was built for ${this.schema.version}: update the client or regenerate its bindings (hearth codegen)`);
    }
    const { tick, items } = decodeGameReliable(bytes, this.schema, (id) => this.actors.get(id)?.kind);
    for (const item of items) {
      switch (item.type) {
        case "joined":
          if (item.version !== this.schema.version) throw new Error(`schema version ${item.version} is not ${this.schema.version}`);
          if (this.tickHz !== undefined) {
            // Another line (a travel, a line change): nothing of the last one stays. Lines tick in step, so
            // its frames still on their way are older than this message and are ignored.
            for (const id of [...this.actors.keys()]) {
              this.actors.delete(id);
              this.push({ type: "despawned", id });
            }
            this.controlled = undefined;
            this.state.forgetMoves();
          }
          this.state.acks.restart(Math.max(0, Number(tick) - 1));
          this.tickHz = item.tickHz;
          this.map = item.map;
          this.viewRadius = item.viewRadius;
          this.speeds = item.speeds;
          this.entry = item.entry;
          this.push({ type: "joined", tickHz: item.tickHz });
          break;
        case "control":
          if (this.controlled !== item.id) {
            this.controlled = item.id;
            this.state.forgetMoves();
          }
          this.push({ type: "controlling", id: item.id });
          break;
        case "spawn": {
          if (this.actors.has(item.id)) throw new DecodeError(`actor ${item.id} spawned twice`);
          if (this.actors.size >= MAX_REPLICA_ACTORS) throw new DecodeError("too many actors");
          const kind = this.schema.kinds[item.kind]!;
          const actor = { kind: item.kind, owned: item.owned, values: kind.props.map((p) => defaultValue(p.ty)) };
          assign(actor.values, item.mask, item.values);
          this.actors.set(item.id, actor);
          this.push({ type: "spawned", id: item.id });
          break;
        }
        case "despawn":
          if (this.actors.delete(item.id)) this.push({ type: "despawned", id: item.id });
          break;
        case "set": {
          const actor = this.actors.get(item.id);
          if (!actor) throw new DecodeError(`a set for actor ${item.id}, which is not there`);
          if ((item.mask & ~visibleMask(this.schema.kinds[actor.kind]!, actor.owned)) !== 0n) {
            throw new DecodeError("property mask out of range");
          }
          assign(actor.values, item.mask, item.values);
          this.push({ type: "changed", id: item.id, mask: item.mask });
          break;
        }
        case "message":
          this.push({ type: "message", name: this.schema.messages[item.index]!.name, values: item.values });
      }
    }
  }

  /** Applies a frame; older ones are ignored, and one naming an actor not yet spawned is not acknowledged. */
  applyFrame(bytes: Uint8Array): void {
    // A frame of another line than the last joined's (the line just entered, overtaking its joined): not read
    // with these actors, not acknowledged (the server sends what it carried again).
    const entry = frameEntry(bytes);
    if (entry === undefined) throw new DecodeError("not a game frame");
    if (this.tickHz === undefined || entry !== this.entry) return;
    const { header, updates, complete } = decodeGameFrame(bytes, this.schema, (id) => this.actors.get(id)?.kind);
    const tick = header.tick;
    if (tick <= this.state.acks.newest) return;
    // The server took every move up to its input ack (after a refusal, the rest of that batch too).
    const hadPending = this.state.pendingMoves > 0;
    this.state.taken(header.inputAck);
    for (const update of updates) {
      const actor = this.actors.get(update.id)!;
      if ((update.mask & ~visibleMask(this.schema.kinds[actor.kind]!, actor.owned)) !== 0n) {
        throw new DecodeError("property mask out of range");
      }
      assign(actor.values, update.mask, update.values);
      this.push({ type: "changed", id: update.id, mask: update.mask });
    }
    if (complete) this.state.acks.applied(tick);
    const at = this.controlled === undefined ? undefined : this.serverPosition(this.controlled);
    if (header.corrected && hadPending && at) this.push({ type: "corrected", ...at });
  }

  /** The newest frame applied: older ones are ignored. */
  get newestFrame(): number {
    return this.state.acks.newest;
  }

  /** What to send on the state channel (see `StateSender.poll`): after a move, and after applying a frame. */
  pollAck(): Uint8Array | undefined {
    return this.state.poll();
  }

  /** A message to the server, checked against the schema, for the reliable channel. */
  message(name: string, values: Value[]): Uint8Array {
    return encodeGameMessage(this.schema, name, values);
  }

  private push(event: GameEvent): void {
    if (this.events.length >= MAX_EVENTS) {
      this.events.shift();
      this.eventsDropped++;
    }
    this.events.push(event);
  }
}

/** Frames applied between two acknowledgements (without moves between): the Rust `frame_acks::ACK_EVERY`. */
export const ACK_EVERY = 3;
/** Ticks before the newest acknowledged frame that an acknowledgement's `earlier` mask covers. */
export const EARLIER_FRAMES = 32;

/**
 * Which frames a client applied, and when it tells the server (the Rust `hearth_replica::frame_acks`): one
 * acknowledgement names the newest frame and, in a mask, which of the 32 ticks before it had frames applied too, so
 * a client speaks every third frame, not every tick.
 */
export class FrameAcks {
  /** The newest frame applied (or the tick before a line's first frame): no older frame is applied after it. */
  newest = 0;
  /** Bit i: the frame of tick `newest - 1 - i` was applied. */
  private earlier = 0;
  /** `newest` is a frame that was applied (not a line's start). */
  private newestApplied = false;
  /** Frames applied since the last acknowledgement. */
  private unacknowledged = 0;

  /** A line's frames begin after `tick` (its joined): nothing of the last line's is acknowledged any more. */
  restart(tick: number): void {
    this.newest = tick;
    this.earlier = 0;
    this.newestApplied = false;
    this.unacknowledged = 0;
  }

  /** The frame of `tick` (newer than `newest`) was applied. */
  applied(tick: number): void {
    const shift = tick - this.newest;
    if (shift > EARLIER_FRAMES) {
      this.earlier = 0;
    } else {
      // The former newest becomes bit shift - 1; bits shifted past 31 fall off.
      const moved = shift >= 32 ? 0 : this.earlier << shift;
      this.earlier = (moved | (this.newestApplied ? 1 << (shift - 1) : 0)) >>> 0;
    }
    this.newest = tick;
    this.newestApplied = true;
    this.unacknowledged += 1;
  }

  /** Enough frames went unacknowledged to send an acknowledgement. */
  due(): boolean {
    return this.unacknowledged >= ACK_EVERY;
  }

  /** The acknowledgement to send now: [newest tick, earlier mask]. */
  take(): [number, number] {
    this.unacknowledged = 0;
    return [this.newest, this.earlier];
  }
}

/**
 * What a client sends on the state channel, as the Rust `frame_acks::StateSender` does (the vectors hold them to the
 * same bytes): its acknowledgements, and its moves the server has not taken yet, resent with every state message.
 */
export class StateSender {
  /** The frames applied. */
  readonly acks = new FrameAcks();
  /** Moves made and not taken by the server, oldest first (at most MAX_MOVES). */
  private readonly pending: GameMove[] = [];
  /** The number of the last move made (from 1, wrapping). */
  private lastSeq = 0;
  /** A move was made since the last state message. */
  private movesDue = false;

  /** A move to (x, y), numbered; beyond MAX_MOVES unacknowledged the oldest is forgotten. */
  pushMove(x: number, y: number): void {
    this.lastSeq = this.lastSeq >= 0xffff_ffff ? 1 : this.lastSeq + 1;
    if (this.pending.length >= MAX_MOVES) this.pending.shift();
    this.pending.push({ seq: this.lastSeq, x: clampCoordinate(x), y: clampCoordinate(y) });
    this.movesDue = true;
  }

  /** Where the newest move not yet taken puts the controlled actor. */
  newestMove(): GameMove | undefined {
    return this.pending[this.pending.length - 1];
  }

  /** Moves made and not taken by the server yet. */
  get pendingMoves(): number {
    return this.pending.length;
  }

  /** The server took every move up to `inputAck` (a frame's): they are not sent again. */
  taken(inputAck: number): void {
    while (this.pending.length > 0 && seqAtOrBefore(this.pending[0]!.seq, inputAck)) this.pending.shift();
  }

  /** Drops the moves not yet taken (refused, or of the last line). */
  forgetMoves(): void {
    this.pending.length = 0;
  }

  /** What to send, when a move was made or enough frames were applied since the last message: the acknowledgement, with the moves not taken yet. */
  poll(): Uint8Array | undefined {
    if (!this.acks.due() && !this.movesDue) return undefined;
    this.movesDue = false;
    const [tick, earlier] = this.acks.take();
    return this.pending.length === 0 ? encodeGameAck(tick, earlier) : encodeGameMoves(tick, earlier, this.pending);
  }
}

/** `seq` was made no later than `ack` (sequence numbers wrap at 2^32). */
function seqAtOrBefore(seq: number, ack: number): boolean {
  return (ack - seq) >>> 0 < 0x7fff_ffff;
}

function assign(state: Value[], mask: bigint, values: Value[]): void {
  let at = 0;
  for (let index = 0; index < state.length; index++) {
    if (mask & (1n << BigInt(index))) state[index] = values[at++]!;
  }
}
