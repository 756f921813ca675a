// The WebSocket driver: opens the stream (key agreement first), feeds the
// sans-IO Session, runs its timers, and resumes on a new stream when the
// connection drops, within the server's grace period.

import { equalBytes, fromHex } from "./bytes.js";
import { Credentials } from "./control.js";
import { ChannelKind, Delivery } from "./frames.js";
import { HandshakeError, Mode, OpenedStream, StreamOpener } from "./handshake.js";
import { CloseCode, Session, SessionConfig, SessionEvent, SessionStats, Welcome } from "./session.js";

export const WS_PROTOCOL = "hearth.v1";

export type ConnectionState = "connecting" | "online" | "reconnecting" | "resumed" | "closed";

export interface ConnectOptions {
  /** How to log in: a password, an access token from /api/login, or anonymous (guests). */
  credentials: Credentials;
  /** The player name shown to others (the account's name is used when empty). */
  name?: string;
  /** UE-style URL options, such as `?zone=town?line=2`. */
  options?: string;
  /** The server's static key (32 bytes or 64 hex characters): the connection fails if another key answers. */
  pinnedKey?: Uint8Array | string;
  /** How long to keep trying to resume after the connection drops (the server keeps the session 30 s). */
  resumeGraceMs?: number;
  /** A WebSocket implementation, where the platform has none (older Node). */
  WebSocket?: typeof WebSocket;
  config?: Partial<SessionConfig>;
}

export interface ConnectionEvents {
  state: ConnectionState;
  message: { channel: number; payload: Uint8Array };
  channelOpened: { channel: number; kind: ChannelKind; delivery: Delivery };
  channelClosed: { channel: number };
  closed: { code: number; reason: string };
}

type Handler<T> = (value: T) => void;

/** Why a connection ended, for people: the server's words when it gave any. */
export class ConnectionClosed extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason);
    this.name = "ConnectionClosed";
  }
}

const POLL_MS = 20;

export class Connection {
  state: ConnectionState = "connecting";
  welcome?: Welcome;
  /** The transport in use and the WebSocket extensions negotiated, for a status panel. */
  get transport(): string {
    const extensions = this.socket?.extensions;
    return extensions ? `websocket (${extensions.split(";")[0]})` : "websocket";
  }
  private socket?: WebSocket;
  private timer?: ReturnType<typeof setInterval>;
  private readonly handlers = new Map<keyof ConnectionEvents, Set<Handler<never>>>();
  private readonly session: Session;
  private readonly pinned?: Uint8Array;
  private readonly Socket: typeof WebSocket;
  private lostAt?: number;
  /** The key the first stream's handshake proved: Welcome must name the same. */
  private provenKey?: Uint8Array;
  private closeInfo?: { code: number; reason: string };
  private joinedWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly url: string,
    private readonly opts: ConnectOptions,
  ) {
    this.session = new Session(opts.credentials, opts.name ?? "", opts.options ?? "", opts.config);
    this.pinned = typeof opts.pinnedKey === "string" ? fromHex(opts.pinnedKey) : opts.pinnedKey;
    const Socket = opts.WebSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
    if (!Socket) throw new Error("this platform has no WebSocket: pass one in the options");
    this.Socket = Socket;
  }

  get stats(): SessionStats {
    return this.session.stats;
  }

  on<K extends keyof ConnectionEvents>(event: K, handler: Handler<ConnectionEvents[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set!.delete(handler as Handler<never>);
  }

  private emit<K extends keyof ConnectionEvents>(event: K, value: ConnectionEvents[K]): void {
    for (const handler of this.handlers.get(event) ?? []) (handler as Handler<ConnectionEvents[K]>)(value);
  }

  /** Opens the first stream and logs in; resolves once the server sent Joined. */
  start(): Promise<void> {
    const joined = new Promise<void>((resolve, reject) => this.joinedWaiters.push({ resolve, reject }));
    this.timer = setInterval(() => this.pump(), POLL_MS);
    this.openStream({ kind: "new" }).catch((e) => this.end(CloseCode.ProtocolError, (e as Error).message));
    return joined;
  }

  /** Sends on an open channel; false if it was dropped (unreliable without a link, or closed). */
  send(channel: number, payload: Uint8Array): boolean {
    const sent = this.session.send(channel, payload);
    this.pump();
    return sent;
  }

  openChannel(channel: number, kind: ChannelKind, delivery: Delivery): void {
    this.session.openChannel(channel, kind, delivery);
    this.pump();
  }

  close(reason = "closed by the player"): void {
    this.session.close(CloseCode.Normal, reason);
    this.pump();
  }

  /** Cuts the current connection without a goodbye, as a network failure would (for tests and demos). */
  dropLink(): void {
    this.socket?.close();
    this.linkDown("the connection was cut");
  }

  private async openStream(mode: Mode): Promise<void> {
    const socket = new this.Socket(this.url, WS_PROTOCOL);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    const opener = new StreamOpener(mode);
    const opened = await new Promise<OpenedStream>((resolve, reject) => {
      let answered = false;
      socket.onopen = () => socket.send(opener.hello());
      socket.onmessage = (event) => {
        if (answered) return;
        answered = true;
        try {
          const attach = mode.kind === "attach" ? this.session.resumeToken : undefined;
          resolve(opener.finish(new Uint8Array(event.data as ArrayBuffer), this.pinned ?? this.session.serverKey, attach));
        } catch (e) {
          reject(e);
        }
      };
      socket.onerror = () => reject(new HandshakeError("could not reach the server", "refused", true));
      socket.onclose = (event) => reject(new HandshakeError(`the connection closed during the handshake (${event.code})`, "refused", true));
    });
    if (this.session.isClosed) {
      socket.close();
      return;
    }
    this.provenKey ??= opened.serverKey;
    this.session.streamOpened(opened, now(), mode.kind === "attach");
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.session.receive(new Uint8Array(event.data as ArrayBuffer), now());
      this.pump();
    };
    const lost = (why: string) => {
      if (this.socket === socket) this.linkDown(why);
    };
    socket.onclose = (event) => lost(`the connection closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
    socket.onerror = () => lost("the connection failed");
    this.pump();
  }

  private linkDown(why: string): void {
    this.socket = undefined;
    this.session.linkLost(why);
    this.pump();
  }

  /** Runs the session's timers, writes what it has, and reports its events. */
  private pump(): void {
    const at = now();
    const packets = this.session.poll(at);
    const socket = this.socket;
    if (socket && socket.readyState === 1) for (const packet of packets) socket.send(packet);
    for (const event of this.session.takeEvents()) this.handle(event, at);
    if (this.state === "reconnecting" && this.lostAt !== undefined && at - this.lostAt > (this.opts.resumeGraceMs ?? 30_000)) {
      this.end(CloseCode.Timeout, "could not reconnect within the server's grace period");
    }
  }

  private handle(event: SessionEvent, at: number): void {
    switch (event.type) {
      case "welcome":
        if (this.provenKey && !equalBytes(this.provenKey, event.welcome.serverKey)) {
          this.end(CloseCode.ProtocolError, "the Welcome names another server key than the handshake proved");
          return;
        }
        this.welcome = event.welcome;
        return;
      case "joined":
        this.setState("online");
        for (const waiter of this.joinedWaiters.splice(0)) waiter.resolve();
        return;
      case "message":
        this.emit("message", { channel: event.channel, payload: event.payload });
        return;
      case "channelOpened":
        this.emit("channelOpened", { channel: event.channel, kind: event.kind, delivery: event.delivery });
        return;
      case "channelClosed":
        this.emit("channelClosed", { channel: event.channel });
        return;
      case "resumed":
        this.lostAt = undefined;
        this.setState("resumed");
        return;
      case "linkDown":
        this.socket?.close();
        this.socket = undefined;
        if (!this.session.resumeToken) {
          this.end(CloseCode.ProtocolError, `the connection dropped before login completed: ${event.why}`);
          return;
        }
        this.lostAt ??= at;
        this.setState("reconnecting");
        void this.reconnect();
        return;
      case "closed":
        this.end(event.code, event.reason);
        return;
    }
  }

  /** Attaches new streams until one resumes the session, the grace ends, or the server says never. */
  private async reconnect(): Promise<void> {
    let delay = 250;
    while (this.state === "reconnecting" && !this.socket) {
      try {
        await this.openStream({ kind: "attach", sessionId: this.session.sessionId! });
        return;
      } catch (e) {
        this.socket = undefined;
        if (e instanceof HandshakeError && !e.retry) {
          this.end(CloseCode.Timeout, `could not resume: ${e.message}`);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }

  private setState(state: ConnectionState): void {
    if (this.state === state || this.state === "closed") return;
    this.state = state;
    this.emit("state", state);
  }

  private end(code: number, reason: string): void {
    if (this.closeInfo) return;
    this.closeInfo = { code, reason };
    if (!this.session.isClosed) this.session.close(code, reason);
    const packets = this.session.poll(now());
    if (this.socket?.readyState === 1) for (const packet of packets) this.socket.send(packet);
    this.socket?.close();
    this.socket = undefined;
    clearInterval(this.timer);
    this.setState("closed");
    this.emit("closed", { code, reason });
    for (const waiter of this.joinedWaiters.splice(0)) waiter.reject(new ConnectionClosed(code, reason));
  }
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/** Connects and logs in: resolves once the server has let the player join. */
export async function connect(url: string, options: ConnectOptions): Promise<Connection> {
  const connection = new Connection(url, options);
  await connection.start();
  return connection;
}
