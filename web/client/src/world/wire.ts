// The world's messages (docs/WORLD.md sections 2-6), byte for byte as
// crates/hearth-replica/src/wire.rs.

import { DecodeError, Reader, Writer } from "../bytes.js";

export const RELIABLE_CHANNEL = 10;
export const STATE_CHANNEL = 11;
export const MAX_CHAT = 256;
export const MAX_ZONE_NAME = 32;
export const MAX_REASON = 256;
export const MAX_ACTOR_NAME = 32;
export const MAX_MOVES = 8;
/** Largest zone side, in cells, as the server's zones are bounded (MAX_ZONE_SIDE of crates/hearth-world/src/zone.rs). */
export const MAX_ZONE_SIDE = 1024;
/** Largest map text in an Entered item: MAX_ZONE_SIDE rows of MAX_ZONE_SIDE cells and a newline. */
export const MAX_MAP = MAX_ZONE_SIDE * (MAX_ZONE_SIDE + 1);
/**
 * Highest line number a server can send. A zone opens a line only when all
 * of its lines are full, and a full line holds at least one player, so no
 * zone has more lines than the server has sessions (hearth_proto's
 * max_sessions). The Rust vectors hold the client to it.
 */
export const MAX_LINE = 100_000;

export enum ChatScope {
  Zone = 0,
  Line = 1,
  Whisper = 2,
  System = 3,
}

export enum Refusal {
  Chat = 1,
  Line = 2,
  Travel = 3,
}

export enum ActorKind {
  Player = 0,
  Npc = 1,
}

export const Field = {
  Pos: 0x01,
  Facing: 0x02,
  Name: 0x04,
  Appearance: 0x08,
  Value0: 0x10,
  All: 0xff,
} as const;

/** Positions are in hundredths of a cell; cell (cx, cy)'s centre is (100·cx + 50, 100·cy + 50). */
export interface Pos {
  x: number;
  y: number;
}

export const UNITS_PER_CELL = 100;

export interface Props {
  pos: Pos;
  facing: number;
  name: string;
  appearance: number;
  values: [number, number, number, number];
}

export function emptyProps(): Props {
  return { pos: { x: 0, y: 0 }, facing: 0, name: "", appearance: 0, values: [0, 0, 0, 0] };
}

export type Command =
  | { type: "chat"; scope: ChatScope; to: string; text: string }
  | { type: "switchLine"; line: number }
  | { type: "travel"; zone: string };

export interface Move {
  seq: number;
  pos: Pos;
}

export interface ClientState {
  epoch: number;
  ackTick: number;
  moves: Move[];
}

export interface Entered {
  zone: string;
  line: number;
  actor: number;
  epoch: number;
  tickHz: number;
  speed: number;
  viewRadius: number;
  map: string;
}

export type Item =
  | ({ type: "entered" } & Entered)
  | { type: "spawn"; actor: number; kind: ActorKind; props: Props }
  | { type: "despawn"; actor: number }
  | { type: "chat"; scope: ChatScope; from: string; to: string; text: string }
  | { type: "refused"; about: Refusal; reason: string };

export interface Reliable {
  tick: number;
  items: Item[];
}

export interface Update {
  actor: number;
  mask: number;
  /** Only the masked properties are meaningful. */
  props: Props;
}

export interface Frame {
  epoch: number;
  tick: number;
  inputAck: number;
  ownPos: Pos;
  corrected: boolean;
  updates: Update[];
}

const ITEM = { Entered: 0x01, Spawn: 0x02, Despawn: 0x03, Chat: 0x04, Refused: 0x05 } as const;
const COMMAND = { Chat: 0x01, SwitchLine: 0x02, Travel: 0x03 } as const;
const CLIENT_STATE = 0x10;
const FRAME = 0x20;

function putPos(w: Writer, pos: Pos): void {
  w.ivar(pos.x).ivar(pos.y);
}

function readPos(r: Reader, what: string): Pos {
  return { x: r.ivar(`${what} x`), y: r.ivar(`${what} y`) };
}

/** The masked properties, in mask order (the mask itself is written by the caller, if at all). */
export function encodeProps(w: Writer, mask: number, props: Props): void {
  if (mask & Field.Pos) putPos(w, props.pos);
  if (mask & Field.Facing) w.u8(props.facing);
  if (mask & Field.Name) w.str(props.name);
  if (mask & Field.Appearance) w.varint(props.appearance);
  for (let i = 0; i < 4; i++) if (mask & (Field.Value0 << i)) w.ivar(props.values[i]!);
}

/** Reads the masked properties onto a copy of `base` (a fresh Props by default). */
export function decodeMaskedProps(r: Reader, mask: number, base: Props = emptyProps()): Props {
  const props: Props = { ...base, pos: { ...base.pos }, values: [...base.values] };
  if (mask & Field.Pos) props.pos = readPos(r, "position");
  if (mask & Field.Facing) props.facing = r.u8("facing");
  if (mask & Field.Name) props.name = r.str(MAX_ACTOR_NAME, "actor name");
  if (mask & Field.Appearance) props.appearance = r.varint32("appearance");
  for (let i = 0; i < 4; i++) if (mask & (Field.Value0 << i)) props.values[i] = r.ivar(`value ${i}`);
  return props;
}

/** Copies the masked properties of `from` onto `onto`. */
export function applyProps(onto: Props, mask: number, from: Props): void {
  if (mask & Field.Pos) onto.pos = { ...from.pos };
  if (mask & Field.Facing) onto.facing = from.facing;
  if (mask & Field.Name) onto.name = from.name;
  if (mask & Field.Appearance) onto.appearance = from.appearance;
  for (let i = 0; i < 4; i++) if (mask & (Field.Value0 << i)) onto.values[i] = from.values[i]!;
}

export function encodeCommand(command: Command): Uint8Array {
  const w = new Writer(32);
  switch (command.type) {
    case "chat":
      w.u8(COMMAND.Chat).u8(command.scope).str(command.to).str(command.text);
      break;
    case "switchLine":
      w.u8(COMMAND.SwitchLine).varint(command.line);
      break;
    case "travel":
      w.u8(COMMAND.Travel).str(command.zone);
      break;
  }
  return w.finish();
}

export function decodeCommand(bytes: Uint8Array): Command {
  const r = new Reader(bytes);
  let command: Command;
  const type = r.u8("command type");
  if (type === COMMAND.Chat) {
    const scope = r.u8("chat scope");
    if (scope > ChatScope.Whisper) throw new DecodeError("chat scope out of range");
    command = { type: "chat", scope, to: r.str(MAX_ACTOR_NAME, "whisper target"), text: r.str(MAX_CHAT, "chat text") };
  } else if (type === COMMAND.SwitchLine) command = { type: "switchLine", line: r.varint32("line") };
  else if (type === COMMAND.Travel) command = { type: "travel", zone: r.str(MAX_ZONE_NAME, "zone") };
  else throw new DecodeError(`unknown command type ${type}`);
  r.finish("the command");
  return command;
}

export function encodeClientState(state: ClientState): Uint8Array {
  if (state.moves.length > MAX_MOVES) throw new RangeError(`at most ${MAX_MOVES} moves per state message`);
  const w = new Writer(16 + 8 * state.moves.length).u8(CLIENT_STATE).varint(state.epoch).varint(state.ackTick).u8(state.moves.length);
  for (const move of state.moves) {
    w.varint(move.seq);
    putPos(w, move.pos);
  }
  return w.finish();
}

export function decodeClientState(bytes: Uint8Array): ClientState {
  const r = new Reader(bytes);
  const type = r.u8("state type");
  if (type !== CLIENT_STATE) throw new DecodeError(`unknown state type ${type}`);
  const epoch = r.varint32("epoch");
  const ackTick = r.varint32("ack tick");
  const count = r.u8("move count");
  if (count > MAX_MOVES) throw new DecodeError("move count out of range");
  const moves: Move[] = [];
  for (let i = 0; i < count; i++) moves.push({ seq: r.varint32("move seq"), pos: readPos(r, "move") });
  r.finish("the client state");
  return { epoch, ackTick, moves };
}

function encodeItem(w: Writer, item: Item): void {
  switch (item.type) {
    case "entered":
      w.u8(ITEM.Entered).str(item.zone).varint(item.line).varint(item.actor).varint(item.epoch);
      w.varint(item.tickHz).varint(item.speed).varint(item.viewRadius).str(item.map);
      break;
    case "spawn":
      w.u8(ITEM.Spawn).varint(item.actor).u8(item.kind);
      encodeProps(w, Field.All, item.props);
      break;
    case "despawn":
      w.u8(ITEM.Despawn).varint(item.actor);
      break;
    case "chat":
      w.u8(ITEM.Chat).u8(item.scope).str(item.from).str(item.to).str(item.text);
      break;
    case "refused":
      w.u8(ITEM.Refused).u8(item.about).str(item.reason);
      break;
  }
}

/** A line number (1-based); a page offers a choice of lines from it, so it is bounded. */
function readLine(r: Reader): number {
  const line = r.varint32("line");
  if (line < 1 || line > MAX_LINE) throw new DecodeError(`line ${line} is out of range: lines are numbered 1 to ${MAX_LINE}`);
  return line;
}

function decodeItem(r: Reader): Item {
  const type = r.u8("item type");
  switch (type) {
    case ITEM.Entered:
      return {
        type: "entered",
        zone: r.str(MAX_ZONE_NAME, "zone"),
        line: readLine(r),
        actor: r.varint32("actor id"),
        epoch: r.varint32("epoch"),
        tickHz: r.varint32("tick rate"),
        speed: r.varint32("speed"),
        viewRadius: r.varint32("view radius"),
        map: r.str(MAX_MAP, "map"),
      };
    case ITEM.Spawn: {
      const actor = r.varint32("actor id");
      const kind = r.u8("actor kind");
      if (kind > ActorKind.Npc) throw new DecodeError(`unknown actor kind ${kind}`);
      return { type: "spawn", actor, kind, props: decodeMaskedProps(r, Field.All) };
    }
    case ITEM.Despawn:
      return { type: "despawn", actor: r.varint32("actor id") };
    case ITEM.Chat: {
      const scope = r.u8("chat scope");
      if (scope > ChatScope.System) throw new DecodeError(`unknown chat scope ${scope}`);
      return {
        type: "chat",
        scope,
        from: r.str(MAX_ACTOR_NAME, "chat sender"),
        to: r.str(MAX_ACTOR_NAME, "chat recipient"),
        text: r.str(MAX_CHAT, "chat text"),
      };
    }
    case ITEM.Refused: {
      const about = r.u8("refusal");
      if (about < Refusal.Chat || about > Refusal.Travel) throw new DecodeError(`unknown refusal ${about}`);
      return { type: "refused", about, reason: r.str(MAX_REASON, "refusal reason") };
    }
    default:
      throw new DecodeError(`unknown item type ${type}`);
  }
}

export function encodeReliable(message: Reliable): Uint8Array {
  const w = new Writer(64).varint(message.tick).varint(message.items.length);
  for (const item of message.items) encodeItem(w, item);
  return w.finish();
}

export function decodeReliable(bytes: Uint8Array): Reliable {
  const r = new Reader(bytes);
  const tick = r.varint32("tick");
  const count = r.varint("item count");
  // Every item is at least two bytes: refuse counts the bytes cannot hold.
  if (count > Math.floor(r.remaining / 2)) throw new DecodeError("item count out of range");
  const items: Item[] = [];
  for (let i = 0; i < count; i++) items.push(decodeItem(r));
  r.finish("the reliable message");
  return { tick, items };
}

export function encodeFrame(frame: Frame): Uint8Array {
  const w = new Writer(64).u8(FRAME).varint(frame.epoch).varint(frame.tick).varint(frame.inputAck);
  putPos(w, frame.ownPos);
  w.u8(frame.corrected ? 1 : 0).varint(frame.updates.length);
  for (const update of frame.updates) {
    w.varint(update.actor).u8(update.mask);
    encodeProps(w, update.mask, update.props);
  }
  return w.finish();
}

export function decodeFrame(bytes: Uint8Array): Frame {
  const r = new Reader(bytes);
  const type = r.u8("frame type");
  if (type !== FRAME) throw new DecodeError(`unknown frame type ${type}`);
  const epoch = r.varint32("epoch");
  const tick = r.varint32("tick");
  const inputAck = r.varint32("input ack");
  const ownPos = readPos(r, "own position");
  const corrected = r.u8("corrected");
  if (corrected > 1) throw new DecodeError("corrected out of range");
  const count = r.varint("update count");
  if (count > Math.floor(r.remaining / 2)) throw new DecodeError("update count out of range");
  const updates: Update[] = [];
  for (let i = 0; i < count; i++) {
    const actor = r.varint32("actor id");
    const mask = r.u8("field mask");
    if (mask === 0) throw new DecodeError("field mask out of range");
    updates.push({ actor, mask, props: decodeMaskedProps(r, mask) });
  }
  r.finish("the frame");
  return { epoch, tick, inputAck, ownPos, corrected: corrected === 1, updates };
}
