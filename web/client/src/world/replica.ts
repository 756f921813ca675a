// The client's copy of the world (docs/WORLD.md section 7): items applied in
// order, frames applied by epoch and tick, acknowledgements, and prediction
// of the player's own moves with the server's corrections. The rules are
// crates/hearth-replica/src/replica.rs's.

import { ZoneMap, stepTowards } from "./map.js";
import {
  ActorKind,
  ChatScope,
  ClientState,
  Entered,
  MAX_MOVES,
  Move,
  Pos,
  Props,
  Refusal,
  UNITS_PER_CELL,
  applyProps,
  decodeFrame,
  decodeReliable,
} from "./wire.js";

export interface ReplicaActor {
  id: number;
  kind: ActorKind;
  props: Props;
  spawnTick: number;
  /** When the newest position arrived (ms, the caller's clock), and the one before: for interpolation. */
  samples: { at: number; pos: Pos }[];
}

export type WorldEvent =
  | { type: "entered"; zone: string; line: number }
  | { type: "spawned"; actor: ReplicaActor }
  | { type: "despawned"; id: number }
  | { type: "updated"; id: number }
  | { type: "chat"; scope: ChatScope; from: string; to: string; text: string }
  | { type: "refused"; about: Refusal; reason: string }
  | { type: "corrected"; pos: Pos };

export class Replica {
  entered?: Entered;
  map?: ZoneMap;
  readonly actors = new Map<number, ReplicaActor>();
  /** The predicted own position. */
  position?: Pos;
  newestFrame = 0;
  ackTick = 0;
  framesDeferred = 0;
  corrections = 0;
  private nextSeq = 0;
  private pending: Move[] = [];

  get ownActor(): number | undefined {
    return this.entered?.actor;
  }

  get isReady(): boolean {
    return this.map !== undefined && this.position !== undefined;
  }

  get tickHz(): number {
    return Math.max(1, this.entered?.tickHz ?? 20);
  }

  find(name: string): ReplicaActor | undefined {
    const lower = name.toLowerCase();
    for (const actor of this.actors.values()) if (actor.props.name.toLowerCase() === lower) return actor;
    return undefined;
  }

  /** A message from the reliable channel; `now` (ms) stamps positions for interpolation. */
  applyReliable(bytes: Uint8Array, now = 0): WorldEvent[] {
    const message = decodeReliable(bytes);
    const events: WorldEvent[] = [];
    for (const item of message.items) {
      switch (item.type) {
        case "entered": {
          // Read before anything changes: a refused map leaves the replica as it was.
          const map = new ZoneMap(item.map);
          this.actors.clear();
          this.pending = [];
          this.position = undefined;
          this.newestFrame = 0;
          this.ackTick = 0;
          const { type: _, ...entered } = item;
          this.entered = entered;
          this.map = map;
          events.push({ type: "entered", zone: item.zone, line: item.line });
          break;
        }
        case "spawn": {
          if (item.actor === this.ownActor && this.position === undefined) this.position = { ...item.props.pos };
          const actor: ReplicaActor = {
            id: item.actor,
            kind: item.kind,
            props: item.props,
            spawnTick: message.tick,
            samples: [{ at: now, pos: { ...item.props.pos } }],
          };
          this.actors.set(item.actor, actor);
          events.push({ type: "spawned", actor });
          break;
        }
        case "despawn":
          if (this.actors.delete(item.actor)) events.push({ type: "despawned", id: item.actor });
          break;
        case "chat":
          events.push({ type: "chat", scope: item.scope, from: item.from, to: item.to, text: item.text });
          break;
        case "refused":
          events.push({ type: "refused", about: item.about, reason: item.reason });
          break;
      }
    }
    return events;
  }

  /** A message from the state channel. */
  applyFrame(bytes: Uint8Array, now = 0): WorldEvent[] {
    const frame = decodeFrame(bytes);
    const events: WorldEvent[] = [];
    // A frame of another stay describes other actors; an older one is stale.
    if (!this.entered || this.entered.epoch !== frame.epoch || frame.tick <= this.newestFrame) return events;
    this.newestFrame = frame.tick;
    let complete = true;
    for (const update of frame.updates) {
      const actor = this.actors.get(update.actor);
      if (actor && actor.spawnTick <= frame.tick) {
        const moved = (update.mask & 1) !== 0;
        applyProps(actor.props, update.mask, update.props);
        if (moved) remember(actor, now);
        events.push({ type: "updated", id: update.actor });
      } else complete = false;
    }
    if (complete) this.ackTick = frame.tick;
    else this.framesDeferred += 1;
    while (this.pending.length > 0 && this.pending[0]!.seq <= frame.inputAck) this.pending.shift();
    if (frame.corrected) {
      this.pending = [];
      this.position = { ...frame.ownPos };
      this.corrections += 1;
      events.push({ type: "corrected", pos: frame.ownPos });
    } else if (this.pending.length === 0 || this.position === undefined) {
      this.position = { ...frame.ownPos };
    }
    const own = this.ownActor === undefined ? undefined : this.actors.get(this.ownActor);
    if (own && (own.props.pos.x !== frame.ownPos.x || own.props.pos.y !== frame.ownPos.y)) {
      own.props.pos = { ...frame.ownPos };
      remember(own, now);
      events.push({ type: "updated", id: own.id });
    }
    return events;
  }

  /** Position units one tick may cover at the zone's legal speed. */
  get stepPerTick(): number {
    const entered = this.entered;
    if (!entered) return 0;
    return Math.floor((entered.speed * UNITS_PER_CELL) / Math.max(1, entered.tickHz));
  }

  /** One tick's walk towards `target`, stopping at walls; undefined when there is nowhere to go. */
  stepTowards(target: Pos): Move | undefined {
    if (!this.map || !this.position) return undefined;
    const next = stepTowards(this.position, target, this.stepPerTick);
    if ((next.x === this.position.x && next.y === this.position.y) || !this.map.pathClear(this.position, next)) return undefined;
    return this.movedTo(next);
  }

  /** Records a move to `pos` (predicted at once; the server confirms or corrects). */
  movedTo(pos: Pos): Move {
    this.nextSeq += 1;
    const move = { seq: this.nextSeq, pos: { ...pos } };
    if (this.pending.length === 64) this.pending.shift();
    this.pending.push(move);
    this.position = { ...pos };
    return move;
  }

  /** The state channel's message: the acknowledgement and the newest unconfirmed moves. */
  stateMessage(): ClientState {
    return { epoch: this.entered?.epoch ?? 0, ackTick: this.ackTick, moves: this.pending.slice(-MAX_MOVES) };
  }

  get pendingMoves(): number {
    return this.pending.length;
  }
}

function remember(actor: ReplicaActor, now: number): void {
  actor.samples.push({ at: now, pos: { ...actor.props.pos } });
  if (actor.samples.length > 8) actor.samples.shift();
}

/**
 * Where to draw an actor at `now`: `delayMs` in the past, between the two
 * updates around that moment, so remote movement is smooth whatever the
 * update rate (the classic snapshot interpolation).
 */
export function interpolated(actor: ReplicaActor, now: number, delayMs: number): Pos {
  const t = now - delayMs;
  const samples = actor.samples;
  if (samples.length === 0) return actor.props.pos;
  if (t <= samples[0]!.at) return samples[0]!.pos;
  for (let i = samples.length - 1; i > 0; i--) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    if (t >= a.at && t <= b.at) {
      const f = b.at === a.at ? 1 : (t - a.at) / (b.at - a.at);
      return { x: a.pos.x + (b.pos.x - a.pos.x) * f, y: a.pos.y + (b.pos.y - a.pos.y) * f };
    }
  }
  return samples[samples.length - 1]!.pos;
}
