// The sans-IO Session against a scripted server holding the other end of
// the stream keys: the login flow, reliable ordering with duplicates and
// gaps, reassembly, sequenced delivery, heartbeats, resume, and the
// protocol errors that end a session.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BunchFlags,
  ChannelKind,
  Delivery,
  Frame,
  Session,
  SessionEvent,
  StreamCrypto,
  decodeControl,
  decodeFrames,
  encodeControl,
  encodeFrames,
} from "../src/index.js";
import type { Bunch, SessionKeys } from "../src/index.js";

const keys: SessionKeys = {
  clientToServer: new Uint8Array(32).fill(1),
  serverToClient: new Uint8Array(32).fill(2),
  confirm: new Uint8Array(32).fill(3),
};

/** The server's end: seals frames to the client, opens what it sends. */
class FakeServer {
  crypto = StreamCrypto.forServer(keys);
  reliable = 0;
  constructor(readonly session: Session) {}

  send(frames: Frame[], now = 0): SessionEvent[] {
    this.session.receive(this.crypto.seal(encodeFrames(frames)), now);
    return this.session.takeEvents();
  }

  reliableBunch(channel: number, payload: Uint8Array, extra = 0, open?: Bunch["open"]): Frame {
    return { type: "bunch", bunch: { flags: BunchFlags.Reliable | extra, channel, sequence: this.reliable++, part: 0, open, payload } };
  }

  control(message: Parameters<typeof encodeControl>[0]): Frame {
    return this.reliableBunch(0, encodeControl(message));
  }

  /** Every frame the client sent since the last call. */
  receive(now = 0): Frame[] {
    return this.session.poll(now).flatMap((packet) => decodeFrames(this.crypto.open(packet)!));
  }
}

function loggedIn(): { session: Session; server: FakeServer } {
  const session = new Session({ kind: "anonymous" }, "tester", "?zone=town");
  const server = new FakeServer(session);
  session.streamOpened({ crypto: StreamCrypto.forClient(keys), keys, sessionId: 0n, serverReceived: 0n, serverKey: new Uint8Array(32) }, 0, false);
  const hello = server.receive();
  assert.equal(hello.length, 1);
  assert.deepEqual(decodeControl((hello[0] as { bunch: Bunch }).bunch.payload), { type: "hello", version: 2 });
  server.send([server.control({ type: "challenge", nonce: new Uint8Array(16).fill(9) })]);
  const login = server.receive().filter((f) => f.type === "bunch");
  const message = decodeControl((login[0] as { bunch: Bunch }).bunch.payload);
  assert.equal(message.type, "login");
  assert.deepEqual(message.type === "login" && message.nonce, new Uint8Array(16).fill(9));
  assert.equal(message.type === "login" && message.options, "?zone=town");
  const events = server.send([
    server.control({ type: "welcome", map: "town", sessionId: 77n, resumeToken: new Uint8Array(32).fill(5), serverKey: new Uint8Array(32) }),
  ]);
  assert.equal(events[0]?.type, "welcome");
  const after = server.receive().filter((f) => f.type === "bunch").map((f) => decodeControl((f as { bunch: Bunch }).bunch.payload).type);
  assert.deepEqual(after, ["netSpeed", "join"]);
  assert.deepEqual(server.send([server.control({ type: "joined" })]), [{ type: "joined" }]);
  return { session, server };
}

test("the login flow answers each step in order", () => {
  const { session } = loggedIn();
  assert.equal(session.isJoined, true);
  assert.equal(session.sessionId, 77n);
});

test("reliable messages arrive once and in order despite gaps and duplicates, split ones reassembled", () => {
  const { server } = loggedIn();
  const open = server.reliableBunch(10, new Uint8Array(), BunchFlags.Open, { kind: ChannelKind.Game, delivery: Delivery.ReliableOrdered });
  assert.deepEqual(server.send([open]), [{ type: "channelOpened", channel: 10, kind: ChannelKind.Game, delivery: Delivery.ReliableOrdered }]);
  const base = server.reliable;
  const part = (i: number, flags: number, bytes: number[]): Frame => ({
    type: "bunch",
    bunch: { flags: BunchFlags.Reliable | BunchFlags.Partial | flags, channel: 10, sequence: base + i, part: i, payload: new Uint8Array(bytes) },
  });
  // Parts 2 and 1 arrive before 0, part 1 twice.
  assert.deepEqual(server.send([part(2, BunchFlags.PartialFinal, [5, 6]), part(1, 0, [3, 4]), part(1, 0, [3, 4])]), []);
  const events = server.send([part(0, BunchFlags.PartialInitial, [1, 2])]);
  assert.deepEqual(events, [{ type: "message", channel: 10, payload: new Uint8Array([1, 2, 3, 4, 5, 6]) }]);
  server.reliable = base + 3;
  // An old one again: dropped, and acknowledged again.
  assert.deepEqual(server.send([part(0, BunchFlags.PartialInitial, [1, 2])]), []);
  const acks = server.receive().filter((f) => f.type === "ack");
  assert.deepEqual(acks.at(-1), { type: "ack", received: base + 3 });
});

test("sequenced channels drop what is older than the newest delivered", () => {
  const { server } = loggedIn();
  server.send([server.reliableBunch(11, new Uint8Array(), BunchFlags.Open, { kind: ChannelKind.Game, delivery: Delivery.UnreliableSequenced })]);
  const frame = (sequence: number): Frame => ({ type: "bunch", bunch: { flags: 0, channel: 11, sequence, part: 0, payload: new Uint8Array([sequence]) } });
  const delivered = server.send([frame(5), frame(3), frame(6)]).map((e) => (e.type === "message" ? e.payload[0] : -1));
  assert.deepEqual(delivered, [5, 6]);
});

test("pings answer with pongs and the ack; a quiet link pings; ten silent seconds take the link down", () => {
  const { session, server } = loggedIn();
  server.send([{ type: "ping", sentMs: 1234 }], 100);
  const answer = server.receive(100);
  assert.ok(answer.some((f) => f.type === "pong" && f.echoMs === 1234));
  assert.ok(answer.some((f) => f.type === "ack"));
  assert.ok(server.receive(1200).some((f) => f.type === "ping"));
  server.send([{ type: "pong", echoMs: 1200 }], 1242);
  assert.equal(session.stats.rttMs, 42);
  session.poll(11_300);
  assert.deepEqual(session.takeEvents(), [{ type: "linkDown", why: "nothing heard for 10 s" }]);
});

test("a resume sends only the Resume first, then what the server has not received", () => {
  const { session, server } = loggedIn();
  server.send([server.reliableBunch(12, new Uint8Array(), BunchFlags.Open, { kind: ChannelKind.Game, delivery: Delivery.ReliableOrdered })]);
  session.linkLost("cut");
  session.takeEvents();
  session.send(12, new Uint8Array([42]));
  const next = new FakeServer(session);
  session.streamOpened({ crypto: StreamCrypto.forClient(keys), keys, sessionId: 77n, serverReceived: 0n, serverKey: new Uint8Array(32) }, 5000, true);
  const first = next.receive(5000);
  assert.deepEqual(first, [{ type: "resume", sessionId: 77n, received: session.receivedCount }]);
  // The server had everything up to the Join (Hello, Login, NetSpeed, Join = 4).
  assert.deepEqual(next.send([{ type: "resumed", received: 4 }], 5001), [{ type: "resumed" }]);
  const resent = next.receive(5001).filter((f) => f.type === "bunch") as { bunch: Bunch }[];
  assert.deepEqual(resent.map((f) => [f.bunch.channel, f.bunch.sequence]), [[12, 4]]);
});

test("protocol violations end the session with a reason", () => {
  const cases: [string, (server: FakeServer) => Frame[]][] = [
    ["acknowledgement of messages never sent", () => [{ type: "ack", received: 99 }]],
    ["not open", (s) => [s.reliableBunch(40, new Uint8Array([1]))]],
    ["unexpected kcp frame", () => [{ type: "kcp", bytes: new Uint8Array([1]) }]],
    ["unexpected welcome", (s) => [s.control({ type: "welcome", map: "x", sessionId: 1n, resumeToken: new Uint8Array(32), serverKey: new Uint8Array(32) })]],
  ];
  for (const [why, frames] of cases) {
    const { session, server } = loggedIn();
    const events = server.send(frames(server));
    const closed = events.find((e) => e.type === "closed");
    assert.ok(closed && closed.type === "closed" && closed.reason.toLowerCase().includes(why.toLowerCase()), `${why}: ${JSON.stringify(events)}`);
    assert.equal(session.isClosed, true);
  }
  const { session } = loggedIn();
  session.receive(new Uint8Array(40), 0);
  const closed = session.takeEvents()[0];
  assert.equal(closed?.type === "closed" && closed.reason, "a stream packet failed authentication");
});

test("a server flooding out-of-order reliable bunches is refused before it fills memory", () => {
  const { session, server } = loggedIn();
  const big = new Uint8Array(60_000);
  const frames: Frame[] = [];
  for (let i = 1; i <= 40; i++) {
    frames.push({ type: "bunch", bunch: { flags: BunchFlags.Reliable, channel: 0, sequence: server.reliable + i, part: 0, payload: big } });
  }
  const closed = frames.flatMap((f) => server.send([f])).find((e) => e.type === "closed");
  assert.ok(closed && closed.type === "closed" && closed.reason.includes("out of order"));
  assert.equal(session.isClosed, true);
});
