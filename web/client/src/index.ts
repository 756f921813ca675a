// @hearth/client: Hearth's protocol for browsers and Node.
//
//   const connection = await connect("ws://127.0.0.1:8080/ws", {
//     credentials: { kind: "token", token }, options: "?zone=town" });
//   const world = new WorldClient(connection);
//   world.on((event) => console.log(event));
//   world.moveTo({ x: 2050, y: 1050 });
//   world.say("hello");

export * from "./bytes.js";
export * from "./connection.js";
export * from "./control.js";
export * from "./crypto.js";
export * from "./frames.js";
export * from "./handshake.js";
export * from "./reassembly.js";
export * from "./session.js";
export * as world from "./world/wire.js";
export { MAP_LEGEND, ZoneMap, cellCentre, cellOf, distance, stepTowards } from "./world/map.js";
export { Replica, interpolated } from "./world/replica.js";
export type { ReplicaActor, WorldEvent } from "./world/replica.js";
export { WorldClient } from "./world/client.js";
export { SCHEMA_CHANNEL, readRecording } from "./world/record.js";
export type { Record } from "./world/record.js";
export * as game from "./game/schema.js";
export { GameReplica, decodeGameFrame, decodeGameReliable, encodeGameAck, encodeGameMessage, encodeGameReliable, joinedVersion } from "./game/replica.js";
export type { GameActor, GameEvent, GameItem, GameUpdate } from "./game/replica.js";
