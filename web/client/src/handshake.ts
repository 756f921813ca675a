// The stream key agreement (docs/PROTOCOL.md 7.1): StreamHello from the
// client, StreamAccept (or StreamReject, VersionMismatch) from the server,
// then every packet sealed. Only the client's half lives here.

import { DecodeError, Reader, Writer, equalBytes, utf8 } from "./bytes.js";
import { KeyPair, SessionKeys, StreamCrypto, deriveKeys, diffieHellman, keyPair, open, transcriptHash } from "./crypto.js";

export const PROTOCOL_VERSION = 2;

export const StreamKind = { Hello: 0x11, Accept: 0x12, Reject: 0x13, VersionMismatch: 0x07 } as const;

/** New session, or attach a new stream to an existing one (resume). */
export type Mode = { kind: "new" } | { kind: "attach"; sessionId: bigint };

export function encodeMode(mode: Mode): Uint8Array {
  const w = new Writer(9);
  if (mode.kind === "new") w.u8(0).u64(0n);
  else w.u8(1).u64(mode.sessionId);
  return w.finish();
}

export function decodeMode(r: Reader): Mode {
  const tag = r.u8("handshake mode");
  const sessionId = r.u64("session id");
  if (tag === 0) {
    if (sessionId !== 0n) throw new DecodeError("a New mode carries session id 0");
    return { kind: "new" };
  }
  if (tag === 1) return { kind: "attach", sessionId };
  throw new DecodeError(`unknown handshake mode ${tag}`);
}

export const StreamRefusal = { UnknownSession: 1, ServerFull: 3, TooManyFromAddress: 4 } as const;

const REFUSALS: Record<number, string> = {
  1: "the server no longer has this session",
  3: "the server is full",
  4: "too many connections from this address are logging in; try again shortly",
};

export type StreamAnswer =
  | { kind: "accept"; version: number; serverEphemeral: Uint8Array; serverStatic: Uint8Array; sealed: Uint8Array }
  | { kind: "reject"; version: number; reason: number }
  | { kind: "versionMismatch"; serverVersion: number; clientVersion: number };

export function encodeStreamHello(mode: Mode, clientPublic: Uint8Array, version = PROTOCOL_VERSION): Uint8Array {
  return new Writer(44).u8(StreamKind.Hello).u16(version).bytes(encodeMode(mode)).bytes(clientPublic).finish();
}

export function decodeStreamAnswer(packet: Uint8Array): StreamAnswer {
  const r = new Reader(packet);
  const type = r.u8("stream handshake type");
  let answer: StreamAnswer;
  switch (type) {
    case StreamKind.Accept:
      answer = {
        kind: "accept",
        version: r.u16("protocol version"),
        serverEphemeral: r.bytes(32, "server ephemeral key").slice(),
        serverStatic: r.bytes(32, "server static key").slice(),
        sealed: r.bytes(32, "sealed accept body").slice(),
      };
      break;
    case StreamKind.Reject: {
      const version = r.u16("protocol version");
      const reason = r.u8("stream refusal");
      if (!(reason in REFUSALS)) throw new DecodeError(`unknown stream refusal ${reason}`);
      answer = { kind: "reject", version, reason };
      break;
    }
    case StreamKind.VersionMismatch:
      answer = { kind: "versionMismatch", serverVersion: r.u16("server version"), clientVersion: r.u16("client version") };
      break;
    default:
      throw new DecodeError(`unexpected stream handshake packet type ${type}`);
  }
  r.finish("the stream handshake answer");
  return answer;
}

export function streamTranscript(
  version: number,
  clientPublic: Uint8Array,
  serverEphemeral: Uint8Array,
  serverStatic: Uint8Array,
  mode: Mode,
): Uint8Array {
  return transcriptHash([
    utf8("stream"),
    new Writer(2).u16(version).finish(),
    clientPublic,
    serverEphemeral,
    serverStatic,
    encodeMode(mode),
  ]);
}

/** Why a stream could not be opened; `retry` says whether trying again may work. */
export class HandshakeError extends Error {
  constructor(
    message: string,
    readonly code: "refused" | "version" | "wrongKey" | "noProof" | "malformed",
    readonly retry: boolean,
  ) {
    super(message);
    this.name = "HandshakeError";
  }
}

export interface OpenedStream {
  crypto: StreamCrypto;
  keys: SessionKeys;
  sessionId: bigint;
  /** Reliable bunches the server had received (Attach: what it will not need again). */
  serverReceived: bigint;
  /** The server's static key, now proven. */
  serverKey: Uint8Array;
}

/** The client's half of a stream key agreement: send `hello()`, then `finish(answer)`. */
export class StreamOpener {
  private readonly keys: KeyPair;

  constructor(
    readonly mode: Mode,
    secret?: Uint8Array,
  ) {
    this.keys = keyPair(secret);
  }

  get publicKey(): Uint8Array {
    return this.keys.public;
  }

  hello(): Uint8Array {
    return encodeStreamHello(this.mode, this.keys.public);
  }

  /** `pinned`: the key the server must prove; `attachSecret`: the resume token in Attach mode. */
  finish(answerBytes: Uint8Array, pinned?: Uint8Array, attachSecret?: Uint8Array): OpenedStream {
    let answer: StreamAnswer;
    try {
      answer = decodeStreamAnswer(answerBytes);
    } catch (e) {
      throw new HandshakeError(`bad stream handshake answer: ${(e as Error).message}`, "malformed", false);
    }
    if (answer.kind === "reject") {
      // A full server or a busy address may have room later; an unknown session never comes back.
      throw new HandshakeError(REFUSALS[answer.reason]!, "refused", answer.reason !== StreamRefusal.UnknownSession);
    }
    if (answer.kind === "versionMismatch") {
      throw new HandshakeError(
        `upgrade required: the server speaks protocol version ${answer.serverVersion}, this client ${answer.clientVersion}`,
        "version",
        false,
      );
    }
    if (pinned && !equalBytes(pinned, answer.serverStatic)) {
      throw new HandshakeError("the server presented another key than the pinned one", "wrongKey", false);
    }
    let keys: SessionKeys;
    try {
      const transcript = streamTranscript(PROTOCOL_VERSION, this.keys.public, answer.serverEphemeral, answer.serverStatic, this.mode);
      keys = deriveKeys(
        diffieHellman(this.keys.secret, answer.serverEphemeral),
        diffieHellman(this.keys.secret, answer.serverStatic),
        attachSecret,
        transcript,
      );
    } catch {
      throw new HandshakeError("the server's stream handshake answer did not prove its key", "noProof", false);
    }
    const body = open(keys.confirm, 0n, answer.sealed);
    if (!body) throw new HandshakeError("the server's stream handshake answer did not prove its key", "noProof", false);
    const r = new Reader(body);
    return {
      crypto: StreamCrypto.forClient(keys),
      keys,
      sessionId: r.u64("session id"),
      serverReceived: r.u64("received"),
      serverKey: answer.serverStatic,
    };
  }
}
