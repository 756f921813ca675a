// Playing the world over a Connection: the replica fed from channels 10 and
// 11, prediction on the zone's tick, and the commands (chat, lines, travel).

import { Connection } from "../connection.js";
import { Replica, ReplicaActor, WorldEvent } from "./replica.js";
import { ChatScope, Command, Pos, RELIABLE_CHANNEL, STATE_CHANNEL, encodeClientState, encodeCommand } from "./wire.js";

type Handler = (event: WorldEvent) => void;

export class WorldClient {
  readonly replica = new Replica();
  /** Where the player wants to go; prediction walks there a tick at a time. */
  target?: Pos;
  private timer?: ReturnType<typeof setTimeout>;
  private readonly handlers = new Set<Handler>();
  private lastAckSent = -1;
  private stopped = false;

  constructor(
    readonly connection: Connection,
    private readonly clock: () => number = () => performance.now(),
  ) {
    connection.on("message", ({ channel, payload }) => {
      let events: WorldEvent[];
      try {
        if (channel === RELIABLE_CHANNEL) events = this.replica.applyReliable(payload, this.clock());
        else if (channel === STATE_CHANNEL) events = this.replica.applyFrame(payload, this.clock());
        else return;
      } catch (e) {
        // The server never sends what does not decode: this is a bug worth closing over.
        connection.close(`a world message did not decode: ${(e as Error).message}`);
        return;
      }
      for (const event of events) {
        if (event.type === "entered" || event.type === "corrected") this.target = undefined;
        for (const handler of this.handlers) handler(event);
      }
    });
    connection.on("closed", () => this.stop());
    this.schedule();
  }

  on(handler: Handler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  get self(): ReplicaActor | undefined {
    const id = this.replica.ownActor;
    return id === undefined ? undefined : this.replica.actors.get(id);
  }

  /** Walk to a position (hundredths of a cell); the server checks every step. */
  moveTo(pos: Pos): void {
    this.target = { x: Math.round(pos.x), y: Math.round(pos.y) };
  }

  /** Walk in a direction until told otherwise (keyboard control); (0, 0) stops. */
  walk(dx: number, dy: number): void {
    const at = this.replica.position;
    if (!at || (dx === 0 && dy === 0)) {
      this.target = undefined;
      return;
    }
    const length = Math.hypot(dx, dy);
    const far = 100 * 100; // a hundred cells ahead: the walk stops at the first wall
    this.target = { x: Math.round(at.x + (dx / length) * far), y: Math.round(at.y + (dy / length) * far) };
  }

  say(text: string, scope: ChatScope.Zone | ChatScope.Line = ChatScope.Zone): void {
    this.command({ type: "chat", scope, to: "", text });
  }

  whisper(to: string, text: string): void {
    this.command({ type: "chat", scope: ChatScope.Whisper, to, text });
  }

  switchLine(line: number): void {
    this.command({ type: "switchLine", line });
  }

  travel(zone: string): void {
    this.command({ type: "travel", zone });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private command(command: Command): void {
    this.connection.send(RELIABLE_CHANNEL, encodeCommand(command));
  }

  /** One tick: a predicted step towards the target, then acks and unconfirmed moves. */
  private tick(): void {
    const replica = this.replica;
    if (replica.isReady && this.target) {
      const move = replica.stepTowards(this.target);
      if (!move) this.target = undefined;
    }
    if (replica.entered && (replica.pendingMoves > 0 || replica.ackTick !== this.lastAckSent)) {
      this.connection.send(STATE_CHANNEL, encodeClientState(replica.stateMessage()));
      this.lastAckSent = replica.ackTick;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tick();
      this.schedule();
    }, 1000 / this.replica.tickHz);
  }
}
