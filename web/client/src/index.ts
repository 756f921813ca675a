// @hearth/client: Hearth's protocol for browsers and Node.
//
//   const replica = new GameReplica(schema); // or a game's generated newReplica()
//   const connection = new Connection("ws://127.0.0.1:8080/ws", {
//     credentials: { kind: "token", token }, options: `?schema=${schema.version}` });
//   connection.on("message", ({ channel, payload }) => {
//     if (channel === RELIABLE_CHANNEL) replica.applyReliable(payload);
//     else if (channel === STATE_CHANNEL) replica.applyFrame(payload);
//     const ack = replica.pollAck();
//     if (ack) connection.send(STATE_CHANNEL, ack);
//   });
//   await connection.start();

export * from "./bytes.js";
export * from "./connection.js";
export * from "./control.js";
export * from "./crypto.js";
export * from "./frames.js";
export * from "./handshake.js";
export * from "./reassembly.js";
export * from "./session.js";
export { MAP_LEGEND, MAX_MAP, MAX_ZONE_SIDE, ZoneMap, cellCentre, cellOf, distance, stepTowards } from "./world/map.js";
export type { Pos } from "./world/map.js";
export { SCHEMA_CHANNEL, readRecording } from "./world/record.js";
export type { Record } from "./world/record.js";
export * as game from "./game/schema.js";
export {
  FrameAcks,
  GameReplica,
  RELIABLE_CHANNEL,
  STATE_CHANNEL,
  UNITS_PER_CELL,
  decodeGameFrame,
  decodeGameReliable,
  encodeGameAck,
  encodeGameMoves,
  encodeGameMessage,
  encodeGameReliable,
  joinedVersion,
} from "./game/replica.js";
export type { GameActor, GameEvent, GameItem, GameUpdate } from "./game/replica.js";
