// Control-channel messages (docs/PROTOCOL.md section 4): the login flow
// Hello -> Challenge -> Login -> Welcome -> NetSpeed -> Join -> Joined.

import { DecodeError, Reader, Writer } from "./bytes.js";

export const MAX_NAME = 64;
export const MAX_SECRET = 1024;
export const MAX_OPTIONS = 1024;
export const MAX_TEXT = 256;
export const NONCE_LEN = 16;

export const ControlKind = {
  Hello: 0x01,
  Challenge: 0x02,
  Login: 0x03,
  Welcome: 0x04,
  NetSpeed: 0x05,
  Join: 0x06,
  Joined: 0x07,
  Failure: 0x08,
} as const;

export type Credentials =
  | { kind: "password"; account: string; password: string }
  | { kind: "token"; token: string }
  | { kind: "anonymous" };

export interface UdpTicket {
  sessionId: bigint;
  secret: Uint8Array;
  port: number;
}

export type ControlMessage =
  | { type: "hello"; version: number }
  | { type: "challenge"; nonce: Uint8Array }
  | { type: "login"; nonce: Uint8Array; credentials: Credentials; playerName: string; options: string }
  | {
      type: "welcome";
      map: string;
      sessionId: bigint;
      resumeToken: Uint8Array;
      ticket?: UdpTicket;
      serverKey: Uint8Array;
    }
  | { type: "netSpeed"; bytesPerSecond: number }
  | { type: "join" }
  | { type: "joined" }
  | { type: "failure"; code: number; reason: string };

export function encodeControl(message: ControlMessage): Uint8Array {
  const w = new Writer(64);
  switch (message.type) {
    case "hello":
      w.u8(ControlKind.Hello).u16(message.version);
      break;
    case "challenge":
      w.u8(ControlKind.Challenge).bytes(message.nonce);
      break;
    case "login": {
      w.u8(ControlKind.Login).bytes(message.nonce);
      const c = message.credentials;
      if (c.kind === "password") w.u8(0).str(c.account).str(c.password);
      else if (c.kind === "token") w.u8(1).str(c.token);
      else w.u8(2);
      w.str(message.playerName).str(message.options);
      break;
    }
    case "welcome":
      w.u8(ControlKind.Welcome).str(message.map).u64(message.sessionId).bytes(message.resumeToken);
      if (message.ticket) w.u8(1).u64(message.ticket.sessionId).bytes(message.ticket.secret).u16(message.ticket.port);
      else w.u8(0);
      w.bytes(message.serverKey);
      break;
    case "netSpeed":
      w.u8(ControlKind.NetSpeed).u32(message.bytesPerSecond);
      break;
    case "join":
      w.u8(ControlKind.Join);
      break;
    case "joined":
      w.u8(ControlKind.Joined);
      break;
    case "failure":
      w.u8(ControlKind.Failure).u16(message.code).str(message.reason);
      break;
  }
  return w.finish();
}

export function decodeControl(bytes: Uint8Array): ControlMessage {
  const r = new Reader(bytes);
  let message: ControlMessage;
  const type = r.u8("control message type");
  switch (type) {
    case ControlKind.Hello:
      message = { type: "hello", version: r.u16("protocol version") };
      break;
    case ControlKind.Challenge:
      message = { type: "challenge", nonce: r.bytes(NONCE_LEN, "login nonce").slice() };
      break;
    case ControlKind.Login: {
      const nonce = r.bytes(NONCE_LEN, "login nonce").slice();
      const kind = r.u8("credential type");
      let credentials: Credentials;
      if (kind === 0) {
        credentials = { kind: "password", account: r.str(MAX_NAME, "account name"), password: r.str(MAX_SECRET, "password") };
      } else if (kind === 1) credentials = { kind: "token", token: r.str(MAX_SECRET, "token") };
      else if (kind === 2) credentials = { kind: "anonymous" };
      else throw new DecodeError(`unknown credential type ${kind}`);
      message = {
        type: "login",
        nonce,
        credentials,
        playerName: r.str(MAX_NAME, "player name"),
        options: r.str(MAX_OPTIONS, "login options"),
      };
      break;
    }
    case ControlKind.Welcome: {
      const map = r.str(MAX_TEXT, "map");
      const sessionId = r.u64("session id");
      const resumeToken = r.bytes(32, "resume token").slice();
      const hasTicket = r.u8("ticket flag");
      let ticket: UdpTicket | undefined;
      if (hasTicket === 1) {
        ticket = { sessionId: r.u64("ticket session"), secret: r.bytes(32, "ticket secret").slice(), port: r.u16("ticket port") };
      } else if (hasTicket !== 0) throw new DecodeError(`bad ticket flag ${hasTicket}`);
      message = { type: "welcome", map, sessionId, resumeToken, ticket, serverKey: r.bytes(32, "server key").slice() };
      break;
    }
    case ControlKind.NetSpeed:
      message = { type: "netSpeed", bytesPerSecond: r.u32("net speed") };
      break;
    case ControlKind.Join:
      message = { type: "join" };
      break;
    case ControlKind.Joined:
      message = { type: "joined" };
      break;
    case ControlKind.Failure:
      message = { type: "failure", code: r.u16("failure code"), reason: r.str(MAX_TEXT, "failure reason") };
      break;
    default:
      throw new DecodeError(`unknown control message type ${type}`);
  }
  r.finish("the control message");
  return message;
}
