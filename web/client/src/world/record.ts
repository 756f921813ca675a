// Recordings of what a client received from the world (the HRTHREC1 format
// of crates/hearth-replica/src/record.rs): `hearth client --record` and the
// server's recordings write them, the replay page reads them.

import { DecodeError } from "../bytes.js";

export const MAGIC = "HRTHREC1";
/** The channel of a game recording's first record: the game's schema as JSON (as /api/schema serves it). */
export const SCHEMA_CHANNEL = 0xffff;
/** Largest record: the largest world message fits. */
export const MAX_RECORD = 2 << 20;

export interface Record {
  /** Microseconds since the recording started. */
  micros: number;
  channel: number;
  bytes: Uint8Array;
}

/** Every record; a truncated last record (a crash while writing) ends the recording cleanly. */
export function readRecording(file: Uint8Array): Record[] {
  if (file.length < 8 || new TextDecoder().decode(file.subarray(0, 8)) !== MAGIC) {
    throw new DecodeError("not a Hearth recording (it does not start with HRTHREC1)");
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const records: Record[] = [];
  let at = 8;
  let last = 0;
  while (at + 14 <= file.length) {
    const micros = Number(view.getBigUint64(at, true));
    const channel = view.getUint16(at + 8, true);
    const length = view.getUint32(at + 10, true);
    if (length > MAX_RECORD) throw new DecodeError(`record of ${length} bytes is larger than any world message: the file is damaged`);
    if (micros < last) throw new DecodeError(`records go back in time (${micros} µs after ${last} µs): the file is damaged`);
    if (at + 14 + length > file.length) break;
    last = micros;
    records.push({ micros, channel, bytes: file.slice(at + 14, at + 14 + length) });
    at += 14 + length;
  }
  return records;
}
