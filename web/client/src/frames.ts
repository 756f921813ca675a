// Frames and bunches (docs/PROTOCOL.md sections 2 and 3): what one sealed
// stream packet carries.

import { DecodeError, Reader, Writer } from "./bytes.js";

export const FrameKind = {
  Padding: 0x00,
  Kcp: 0x01,
  Bunch: 0x02,
  Ack: 0x03,
  Ping: 0x04,
  Pong: 0x05,
  Close: 0x06,
  Resume: 0x07,
  Resumed: 0x08,
} as const;

export const BunchFlags = {
  Open: 0x01,
  Close: 0x02,
  Reliable: 0x04,
  Partial: 0x08,
  PartialInitial: 0x10,
  PartialFinal: 0x20,
  All: 0x3f,
} as const;

export const MAX_CHANNELS = 32767;
export const CONTROL_CHANNEL = 0;
export const MAX_CLOSE_REASON = 256;

export enum ChannelKind {
  Control = 0,
  Game = 1,
  Voice = 2,
  Data = 3,
}

export enum Delivery {
  ReliableOrdered = 0,
  Unreliable = 1,
  UnreliableSequenced = 2,
}

export interface Bunch {
  flags: number;
  channel: number;
  /** Reliable: the session-wide reliable sequence; unreliable: the channel's message sequence. */
  sequence: number;
  /** Index of this part within its message (on the wire only with PARTIAL). */
  part: number;
  /** Present exactly when OPEN is set. */
  open?: { kind: ChannelKind; delivery: Delivery };
  payload: Uint8Array;
}

export type Frame =
  | { type: "padding" }
  | { type: "kcp"; bytes: Uint8Array }
  | { type: "bunch"; bunch: Bunch }
  | { type: "ack"; received: number }
  | { type: "ping"; sentMs: number }
  | { type: "pong"; echoMs: number }
  | { type: "close"; code: number; reason: string }
  | { type: "resume"; sessionId: bigint; received: number }
  | { type: "resumed"; received: number };

export function encodeBunch(w: Writer, bunch: Bunch): void {
  w.u8(bunch.flags).varint(bunch.channel).varint(bunch.sequence);
  if (bunch.flags & BunchFlags.Partial) w.varint(bunch.part);
  if (bunch.open) w.u8(bunch.open.kind).u8(bunch.open.delivery);
  w.prefixed(bunch.payload);
}

export function decodeBunch(r: Reader): Bunch {
  const flags = r.u8("bunch flags");
  if (flags & ~BunchFlags.All) throw new DecodeError("bunch flags out of range");
  if (flags & (BunchFlags.PartialInitial | BunchFlags.PartialFinal) && !(flags & BunchFlags.Partial)) {
    throw new DecodeError("partial flags without PARTIAL");
  }
  const channel = r.varint("bunch channel");
  if (channel > MAX_CHANNELS) throw new DecodeError("bunch channel out of range");
  const sequence = r.varint("bunch sequence");
  let part = 0;
  if (flags & BunchFlags.Partial) {
    part = r.varint("bunch part index");
    if (part > 0xffffffff) throw new DecodeError("bunch part index out of range");
  }
  const bunch: Bunch = { flags, channel, sequence, part, payload: new Uint8Array() };
  if (flags & BunchFlags.Open) {
    const kind = r.u8("channel kind");
    const delivery = r.u8("delivery mode");
    if (kind > 3) throw new DecodeError(`unknown channel kind ${kind}`);
    if (delivery > 2) throw new DecodeError(`unknown delivery mode ${delivery}`);
    bunch.open = { kind, delivery };
  }
  bunch.payload = r.prefixed(Number.MAX_SAFE_INTEGER, "bunch payload").slice();
  return bunch;
}

export function encodeFrame(w: Writer, frame: Frame): void {
  switch (frame.type) {
    case "padding":
      w.u8(FrameKind.Padding);
      break;
    case "kcp":
      w.u8(FrameKind.Kcp).prefixed(frame.bytes);
      break;
    case "bunch":
      w.u8(FrameKind.Bunch);
      encodeBunch(w, frame.bunch);
      break;
    case "ack":
      w.u8(FrameKind.Ack).varint(frame.received);
      break;
    case "ping":
      w.u8(FrameKind.Ping).u32(frame.sentMs);
      break;
    case "pong":
      w.u8(FrameKind.Pong).u32(frame.echoMs);
      break;
    case "close": {
      // Cut to 256 bytes on a character boundary, as the Rust side does.
      let reason = frame.reason;
      while (new TextEncoder().encode(reason).length > MAX_CLOSE_REASON) reason = reason.slice(0, -1);
      w.u8(FrameKind.Close).u16(frame.code).str(reason);
      break;
    }
    case "resume":
      w.u8(FrameKind.Resume).u64(frame.sessionId).varint(frame.received);
      break;
    case "resumed":
      w.u8(FrameKind.Resumed).varint(frame.received);
      break;
  }
}

export function decodeFrame(r: Reader): Frame {
  const type = r.u8("frame type");
  switch (type) {
    case FrameKind.Padding:
      r.rest();
      return { type: "padding" };
    case FrameKind.Kcp:
      return { type: "kcp", bytes: r.prefixed(Number.MAX_SAFE_INTEGER, "KCP frame").slice() };
    case FrameKind.Bunch:
      return { type: "bunch", bunch: decodeBunch(r) };
    case FrameKind.Ack:
      return { type: "ack", received: r.varint("ack") };
    case FrameKind.Ping:
      return { type: "ping", sentMs: r.u32("ping") };
    case FrameKind.Pong:
      return { type: "pong", echoMs: r.u32("pong") };
    case FrameKind.Close:
      return { type: "close", code: r.u16("close code"), reason: r.str(MAX_CLOSE_REASON, "close reason") };
    case FrameKind.Resume:
      return { type: "resume", sessionId: r.u64("session id"), received: r.varint("received count") };
    case FrameKind.Resumed:
      return { type: "resumed", received: r.varint("received count") };
    default:
      throw new DecodeError(`unknown frame type ${type}`);
  }
}

/** Every frame of one packet, in order; throws on the first malformed one. */
export function decodeFrames(packet: Uint8Array): Frame[] {
  const r = new Reader(packet);
  const frames: Frame[] = [];
  while (r.remaining > 0) frames.push(decodeFrame(r));
  return frames;
}

export function encodeFrames(frames: Frame[]): Uint8Array {
  const w = new Writer(128);
  for (const frame of frames) encodeFrame(w, frame);
  return w.finish();
}
