// The client's session over stream links, sans-IO: the driver hands it
// opened streams, packets and the time, and sends what `poll` returns.
// Reliable bunches are numbered session-wide and kept until acknowledged,
// so a resume on a new stream loses nothing and delivers nothing twice
// (docs/PROTOCOL.md sections 2, 3, 4 and 6).

import { DecodeError, Writer } from "./bytes.js";
import { ControlMessage, Credentials, decodeControl, encodeControl } from "./control.js";
import { StreamCrypto } from "./crypto.js";
import {
  Bunch,
  BunchFlags,
  CONTROL_CHANNEL,
  ChannelKind,
  Delivery,
  Frame,
  MAX_CHANNELS,
  decodeFrames,
  encodeFrame,
} from "./frames.js";
import { PROTOCOL_VERSION, OpenedStream } from "./handshake.js";
import { PART_OVERHEAD, Reassembly, ReassemblyError, partFlags, split } from "./reassembly.js";

/** Reliable bunches held while an earlier one is missing, at most (bytes). */
const EARLY_BYTES = 2 << 20;

export const CloseCode = {
  Normal: 0,
  Kicked: 1,
  VersionMismatch: 2,
  ProtocolError: 3,
  LoginRefused: 4,
  LoginTimeout: 5,
  ServerShutdown: 6,
  Replaced: 7,
  Timeout: 8,
  // The server shed the session: its handler queue was full. Try again later.
  Overloaded: 9,
} as const;

export interface SessionConfig {
  heartbeatMs: number;
  idleTimeoutMs: number;
  loginStepTimeoutMs: number;
  /** Largest stream packet, tag included (the server's limit). */
  maxStreamPacket: number;
  /** Bytes of one part of a split message (the Rust side's, so parts line up). */
  partSize: number;
  maxMessage: number;
  maxUnackedBytes: number;
  netSpeed: number;
}

export const DEFAULT_CONFIG: SessionConfig = {
  heartbeatMs: 1000,
  idleTimeoutMs: 10_000,
  loginStepTimeoutMs: 10_000,
  maxStreamPacket: 65_536,
  partSize: 1100,
  maxMessage: 1 << 20,
  maxUnackedBytes: 4 << 20,
  netSpeed: 100_000,
};

export interface Welcome {
  map: string;
  sessionId: bigint;
  resumeToken: Uint8Array;
  serverKey: Uint8Array;
}

export type SessionEvent =
  | { type: "welcome"; welcome: Welcome }
  | { type: "joined" }
  | { type: "channelOpened"; channel: number; kind: ChannelKind; delivery: Delivery }
  | { type: "channelClosed"; channel: number }
  | { type: "message"; channel: number; payload: Uint8Array }
  | { type: "resumed" }
  | { type: "linkDown"; why: string }
  | { type: "closed"; code: number; reason: string };

type LoginStep = "awaitChallenge" | "awaitWelcome" | "awaitJoined" | "joined";

interface Channel {
  kind: ChannelKind;
  delivery: Delivery;
  nextUnreliable: number;
  newestDelivered: number;
}

interface Link {
  crypto: StreamCrypto;
  /** Attach mode: nothing but the Resume frame until the server's Resumed. */
  resuming: boolean;
  lastSent: number;
  lastReceived: number;
  lastPing: number;
}

/** Round trips, loss-free on streams, and traffic counters for a status panel. */
export interface SessionStats {
  rttMs?: number;
  smoothedRttMs?: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  resumes: number;
}

export class Session {
  readonly config: SessionConfig;
  readonly stats: SessionStats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, resumes: 0 };
  private link?: Link;
  private step: LoginStep = "awaitChallenge";
  private stepSince = 0;
  private welcome?: Welcome;
  private closed?: { code: number; reason: string };
  private readonly channels = new Map<number, Channel>([
    [CONTROL_CHANNEL, { kind: ChannelKind.Control, delivery: Delivery.ReliableOrdered, nextUnreliable: 0, newestDelivered: -1 }],
  ]);
  // Reliable, sending: every bunch kept (encoded) until the server's cumulative Ack covers it.
  private nextReliable = 0;
  private acknowledged = 0;
  private readonly unacked: { sequence: number; bytes: Uint8Array }[] = [];
  private unackedBytes = 0;
  // Reliable, receiving.
  private received = 0;
  private readonly early = new Map<number, Bunch>();
  /** Bytes held in `early`, charged per bunch as the reassembly is (payload + 64). */
  private earlyBytes = 0;
  private ackDue = false;
  private readonly reassembly: Reassembly;
  /** Frames to send, or retained reliable bunches already encoded (resent after a resume). */
  private outgoing: (Frame | Uint8Array)[] = [];
  private events: SessionEvent[] = [];

  constructor(
    private readonly credentials: Credentials,
    private readonly playerName: string,
    private readonly options: string,
    config: Partial<SessionConfig> = {},
  ) {
    this.config = { ...DEFAULT_CONFIG, ...config };
    this.reassembly = new Reassembly(this.config.maxMessage);
  }

  get sessionId(): bigint | undefined {
    return this.welcome?.sessionId;
  }

  get resumeToken(): Uint8Array | undefined {
    return this.welcome?.resumeToken;
  }

  get serverKey(): Uint8Array | undefined {
    return this.welcome?.serverKey;
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  get isJoined(): boolean {
    return this.step === "joined";
  }

  get hasLink(): boolean {
    return this.link !== undefined && !this.link.resuming;
  }

  /** Reliable bunches received so far: what a Resume tells the server. */
  get receivedCount(): number {
    return this.received;
  }

  /** A stream's key agreement completed: a new session logs in, an attached one resumes. */
  streamOpened(opened: OpenedStream, now: number, attach: boolean): void {
    this.link = { crypto: opened.crypto, resuming: attach, lastSent: now, lastReceived: now, lastPing: now };
    if (attach) {
      this.outgoing = [{ type: "resume", sessionId: this.welcome!.sessionId, received: this.received }];
      return;
    }
    this.stepSince = now;
    this.sendControl({ type: "hello", version: PROTOCOL_VERSION });
  }

  /** The stream is gone (closed, failed, or silent too long); the session waits for a resume. */
  linkLost(why: string): void {
    if (!this.link) return;
    this.link = undefined;
    this.outgoing = [];
    this.events.push({ type: "linkDown", why });
  }

  /** One sealed packet from the stream. */
  receive(packet: Uint8Array, now: number): void {
    const link = this.link;
    if (!link || this.closed) return;
    const plaintext = link.crypto.open(packet);
    if (!plaintext) {
      this.fail(CloseCode.ProtocolError, "a stream packet failed authentication");
      return;
    }
    link.lastReceived = now;
    this.stats.packetsIn += 1;
    this.stats.bytesIn += packet.length;
    let frames: Frame[];
    try {
      frames = decodeFrames(plaintext);
    } catch (e) {
      this.fail(CloseCode.ProtocolError, `malformed frame: ${(e as Error).message}`);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.handleFrame(frame, now);
    }
  }

  /** Opens a channel from this side (the server opens the world's own). */
  openChannel(channel: number, kind: ChannelKind, delivery: Delivery): void {
    if (channel === CONTROL_CHANNEL || channel > MAX_CHANNELS) throw new RangeError(`channel ${channel} cannot be opened`);
    if (this.channels.has(channel)) throw new Error(`channel ${channel} is already open`);
    this.channels.set(channel, { kind, delivery, nextUnreliable: 0, newestDelivered: -1 });
    this.sendReliable(channel, BunchFlags.Open, { kind, delivery }, new Uint8Array());
  }

  /** Sends on an open channel with its delivery mode. Returns false when the message was dropped. */
  send(channel: number, payload: Uint8Array): boolean {
    const state = this.channels.get(channel);
    if (!state || channel === CONTROL_CHANNEL) throw new Error(`channel ${channel} is not open`);
    if (payload.length > this.config.maxMessage) throw new RangeError(`message of ${payload.length} bytes is over the limit`);
    if (this.closed || !this.welcome) return false;
    if (state.delivery === Delivery.ReliableOrdered) {
      this.sendReliable(channel, 0, undefined, payload);
      return true;
    }
    if (!this.hasLink) return false; // unreliable traffic without a link is simply lost
    const parts = split(payload, this.config.partSize);
    const sequence = state.nextUnreliable++;
    parts.forEach((part, index) => {
      this.outgoing.push({
        type: "bunch",
        bunch: { flags: partFlags(index, parts.length), channel, sequence, part: index, payload: part },
      });
    });
    return true;
  }

  /** Ends the session: Close goes out with the next poll. */
  close(code: number = CloseCode.Normal, reason = "closed by the client"): void {
    if (this.closed) return;
    if (this.hasLink) this.outgoing.push({ type: "close", code, reason });
    this.finish(code, reason);
  }

  /** Timers, then the sealed packets to write, in order. */
  poll(now: number): Uint8Array[] {
    const link = this.link;
    if (link && !this.closed) {
      if (now - link.lastReceived >= this.config.idleTimeoutMs) {
        this.linkLost(`nothing heard for ${this.config.idleTimeoutMs / 1000} s`);
        return [];
      }
      if (this.step !== "joined" && this.welcome === undefined && now - this.stepSince > this.config.loginStepTimeoutMs) {
        this.fail(CloseCode.LoginTimeout, "the server did not answer a login step in time");
      } else if (!link.resuming) {
        // A Ping when the link has been quiet for an interval; on a busy link
        // one every fourth interval keeps the round trip fresh, and one every
        // interval until the first measurement (the Rust side's rule).
        const sincePing = now - link.lastPing;
        const quiet = now - link.lastSent >= this.config.heartbeatMs;
        const measured = this.stats.rttMs !== undefined;
        const stale = sincePing >= (measured ? 4 : 1) * this.config.heartbeatMs;
        if (quiet || stale) {
          this.outgoing.push({ type: "ping", sentMs: now >>> 0 });
          link.lastPing = now;
        }
        if (this.ackDue) {
          this.outgoing.push({ type: "ack", received: this.received });
          this.ackDue = false;
        }
      }
    }
    return this.flush(now);
  }

  /** Events since the last call. */
  takeEvents(): SessionEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  private flush(now: number): Uint8Array[] {
    const link = this.link;
    if (!link || this.outgoing.length === 0) {
      if (!link) this.outgoing = [];
      return [];
    }
    const limit = this.config.maxStreamPacket - 16;
    const packets: Uint8Array[] = [];
    let w = new Writer(256);
    for (const frame of this.outgoing) {
      const before = w.length;
      const put = (into: Writer) => (frame instanceof Uint8Array ? into.bytes(frame) : encodeFrame(into, frame));
      put(w);
      if (w.length > limit && before > 0) {
        packets.push(w.finish().subarray(0, before));
        w = new Writer(256);
        put(w);
      }
    }
    if (w.length > 0) packets.push(w.finish());
    this.outgoing = [];
    link.lastSent = now;
    return packets.map((plain) => {
      const sealed = link.crypto.seal(plain);
      this.stats.packetsOut += 1;
      this.stats.bytesOut += sealed.length;
      return sealed;
    });
  }

  private sendControl(message: ControlMessage): void {
    this.sendReliable(CONTROL_CHANNEL, 0, undefined, encodeControl(message));
  }

  private sendReliable(channel: number, extra: number, open: Bunch["open"], payload: Uint8Array): void {
    const parts = split(payload, this.config.partSize);
    parts.forEach((part, index) => {
      const bunch: Bunch = {
        flags: BunchFlags.Reliable | extra | partFlags(index, parts.length),
        channel,
        sequence: this.nextReliable++,
        part: index,
        open: index === 0 ? open : undefined,
        payload: part,
      };
      const w = new Writer(part.length + 16);
      encodeFrame(w, { type: "bunch", bunch });
      const bytes = w.finish();
      this.unacked.push({ sequence: bunch.sequence, bytes });
      this.unackedBytes += bytes.length;
      if (this.hasLink) this.outgoing.push({ type: "bunch", bunch });
    });
    if (this.unackedBytes > this.config.maxUnackedBytes) {
      this.fail(CloseCode.ProtocolError, "the server stopped acknowledging: more than 4 MiB unacknowledged");
    }
  }

  private handleFrame(frame: Frame, now: number): void {
    switch (frame.type) {
      case "padding":
        return;
      case "bunch":
        if (frame.bunch.flags & BunchFlags.Reliable) this.handleReliable(frame.bunch);
        else this.handleUnreliable(frame.bunch);
        return;
      case "ack":
        if (frame.received > this.nextReliable) {
          this.fail(CloseCode.ProtocolError, "acknowledgement of messages never sent");
          return;
        }
        this.acknowledge(frame.received);
        return;
      case "ping":
        this.outgoing.push({ type: "pong", echoMs: frame.sentMs });
        if (this.received > 0) this.ackDue = true;
        return;
      case "pong": {
        const rtt = ((now >>> 0) - frame.echoMs) >>> 0;
        if (rtt < 60_000) {
          this.stats.rttMs = rtt;
          this.stats.smoothedRttMs = this.stats.smoothedRttMs === undefined ? rtt : this.stats.smoothedRttMs * 0.875 + rtt * 0.125;
        }
        return;
      }
      case "close":
        this.finish(frame.code, frame.reason);
        return;
      case "resumed":
        this.resumed(frame.received);
        return;
      default:
        // KCP frames never travel on a stream; a Resume comes only from clients.
        this.fail(CloseCode.ProtocolError, `unexpected ${frame.type} frame on a stream`);
    }
  }

  private resumed(serverReceived: number): void {
    const link = this.link;
    if (!link || !link.resuming) {
      this.fail(CloseCode.ProtocolError, "Resumed without a Resume");
      return;
    }
    if (serverReceived > this.nextReliable) {
      this.fail(CloseCode.ProtocolError, "the server claims messages never sent");
      return;
    }
    link.resuming = false;
    this.acknowledge(serverReceived);
    // Everything the server has not received goes again, in order, then what waited.
    const waiting = this.outgoing.filter((f) => f instanceof Uint8Array || f.type !== "resume");
    this.outgoing = this.unacked.map((entry) => entry.bytes);
    this.outgoing.push(...waiting);
    this.ackDue = true;
    this.stats.resumes += 1;
    this.events.push({ type: "resumed" });
  }

  private acknowledge(received: number): void {
    this.acknowledged = Math.max(this.acknowledged, received);
    while (this.unacked.length > 0 && this.unacked[0]!.sequence < this.acknowledged) {
      this.unackedBytes -= this.unacked.shift()!.bytes.length;
    }
  }

  private handleReliable(bunch: Bunch): void {
    if (bunch.sequence < this.received) {
      this.ackDue = true; // a duplicate: the server missed our Ack
      return;
    }
    if (bunch.sequence > this.received) {
      if (this.early.has(bunch.sequence)) return;
      // Bounded in entries and in bytes, as the Rust side's reorder buffer.
      const cost = bunch.payload.length + PART_OVERHEAD;
      if (this.early.size >= 4096 || this.earlyBytes + cost > EARLY_BYTES) {
        this.fail(CloseCode.ProtocolError, "too many reliable bunches out of order");
        return;
      }
      this.early.set(bunch.sequence, bunch);
      this.earlyBytes += cost;
      return;
    }
    this.deliverReliable(bunch);
    let next: Bunch | undefined;
    while (!this.closed && (next = this.early.get(this.received))) {
      this.early.delete(this.received);
      this.earlyBytes -= next.payload.length + PART_OVERHEAD;
      this.deliverReliable(next);
    }
  }

  private deliverReliable(bunch: Bunch): void {
    this.received += 1;
    this.ackDue = true;
    const channel = bunch.channel;
    if (bunch.flags & BunchFlags.Open) {
      if (this.channels.has(channel) || !bunch.open) {
        this.fail(CloseCode.ProtocolError, `channel ${channel} opened twice`);
        return;
      }
      this.channels.set(channel, { ...bunch.open, nextUnreliable: 0, newestDelivered: -1 });
      this.events.push({ type: "channelOpened", channel, kind: bunch.open.kind, delivery: bunch.open.delivery });
    } else if (!this.channels.has(channel)) {
      this.fail(CloseCode.ProtocolError, `a reliable message on channel ${channel}, which is not open`);
      return;
    }
    let message: Uint8Array | undefined;
    try {
      message = this.reassembly.add(bunch, bunch.sequence - bunch.part);
    } catch (e) {
      this.fail(CloseCode.ProtocolError, (e as ReassemblyError).message);
      return;
    }
    if (message && message.length > 0) this.deliver(channel, message);
    if (bunch.flags & BunchFlags.Close && channel !== CONTROL_CHANNEL) {
      this.channels.delete(channel);
      this.events.push({ type: "channelClosed", channel });
    }
  }

  private handleUnreliable(bunch: Bunch): void {
    const state = this.channels.get(bunch.channel);
    if (!state || bunch.channel === CONTROL_CHANNEL) return; // dropped, as on the server
    let message: Uint8Array | undefined;
    try {
      message = this.reassembly.add(bunch, bunch.sequence);
    } catch (e) {
      this.fail(CloseCode.ProtocolError, (e as ReassemblyError).message);
      return;
    }
    this.reassembly.expire(bunch.channel, bunch.sequence);
    if (!message) return;
    if (state.delivery === Delivery.UnreliableSequenced) {
      if (bunch.sequence <= state.newestDelivered) return;
      state.newestDelivered = bunch.sequence;
    }
    this.deliver(bunch.channel, message);
  }

  private deliver(channel: number, payload: Uint8Array): void {
    if (channel !== CONTROL_CHANNEL) {
      this.events.push({ type: "message", channel, payload });
      return;
    }
    let message: ControlMessage;
    try {
      message = decodeControl(payload);
    } catch (e) {
      this.fail(CloseCode.ProtocolError, `bad control message: ${(e as DecodeError).message}`);
      return;
    }
    this.handleControl(message);
  }

  private handleControl(message: ControlMessage): void {
    if (message.type === "failure") {
      // The server's Close follows; keep its words for the user.
      this.failure = message;
      return;
    }
    if (this.step === "awaitChallenge" && message.type === "challenge") {
      this.sendControl({
        type: "login",
        nonce: message.nonce,
        credentials: this.credentials,
        playerName: this.playerName,
        options: this.options,
      });
      this.step = "awaitWelcome";
      return;
    }
    if (this.step === "awaitWelcome" && message.type === "welcome") {
      this.welcome = {
        map: message.map,
        sessionId: message.sessionId,
        resumeToken: message.resumeToken,
        serverKey: message.serverKey,
      };
      this.sendControl({ type: "netSpeed", bytesPerSecond: this.config.netSpeed });
      this.sendControl({ type: "join" });
      this.step = "awaitJoined";
      this.events.push({ type: "welcome", welcome: this.welcome });
      return;
    }
    if (this.step === "awaitJoined" && message.type === "joined") {
      this.step = "joined";
      this.events.push({ type: "joined" });
      return;
    }
    this.fail(CloseCode.ProtocolError, `unexpected ${message.type} during the login step ${this.step}`);
  }

  private failure?: { code: number; reason: string };

  private fail(code: number, reason: string): void {
    if (this.closed) return;
    if (this.link && !this.link.resuming) this.outgoing.push({ type: "close", code, reason });
    this.finish(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    // A Failure before the Close says more than the Close's code alone.
    const said = this.failure && code !== CloseCode.Normal ? this.failure.reason : reason;
    this.closed = { code, reason: said || reason };
    this.events.push({ type: "closed", code, reason: this.closed.reason });
  }
}

