// Partial bunches back into messages (docs/PROTOCOL.md section 3), with the
// memory bound counted in entries as well as bytes: each part is charged its
// payload plus 64 bytes, so a flood of tiny parts hits the limit as surely as
// a few large ones.

import { Bunch, BunchFlags } from "./frames.js";

export const PART_OVERHEAD = 64;
/** Unreliable messages whose parts do not all arrive are given up after this many newer ones. */
export const UNRELIABLE_HORIZON = 32;

export class ReassemblyError extends Error {}

interface Pending {
  parts: Uint8Array[];
  count?: number;
  received: number;
  bytes: number;
}

/** Collects parts per (channel, message sequence); returns a message when complete. */
export class Reassembly {
  private readonly pending = new Map<string, Pending>();
  private charged = 0;

  constructor(
    private readonly maxMessage = 1 << 20,
    private readonly maxBytes = 2 << 20,
  ) {}

  get chargedBytes(): number {
    return this.charged;
  }

  /** One part; the message's bytes once every part is in, else undefined. */
  add(bunch: Bunch, messageSequence: number): Uint8Array | undefined {
    if (!(bunch.flags & BunchFlags.Partial)) return bunch.payload;
    if (bunch.payload.length === 0) throw new ReassemblyError("a partial bunch with an empty payload");
    const key = `${bunch.channel}:${messageSequence}`;
    let entry = this.pending.get(key);
    if (!entry) {
      entry = { parts: [], received: 0, bytes: 0 };
      this.pending.set(key, entry);
    }
    if (entry.parts[bunch.part]) return undefined; // a duplicate part
    const cost = bunch.payload.length + PART_OVERHEAD;
    if (this.charged + cost > this.maxBytes) throw new ReassemblyError("reassembly memory exhausted");
    if (entry.bytes + bunch.payload.length > this.maxMessage) throw new ReassemblyError("message larger than the limit");
    if (bunch.flags & BunchFlags.PartialFinal) {
      if (entry.count !== undefined && entry.count !== bunch.part + 1) throw new ReassemblyError("two final parts");
      entry.count = bunch.part + 1;
    }
    if (bunch.flags & BunchFlags.PartialInitial && bunch.part !== 0) throw new ReassemblyError("an initial part with index > 0");
    if (entry.count !== undefined && bunch.part >= entry.count) throw new ReassemblyError("a part after the final one");
    entry.parts[bunch.part] = bunch.payload;
    entry.received += 1;
    entry.bytes += bunch.payload.length;
    this.charged += cost;
    if (entry.count === undefined || entry.received < entry.count) return undefined;
    this.drop(key, entry);
    const out = new Uint8Array(entry.bytes);
    let at = 0;
    for (const part of entry.parts) {
      out.set(part!, at);
      at += part!.length;
    }
    return out;
  }

  /** Gives up unreliable messages of `channel` older than `newest - horizon`. */
  expire(channel: number, newest: number): void {
    for (const [key, entry] of this.pending) {
      const [c, s] = key.split(":").map(Number);
      if (c === channel && s! + UNRELIABLE_HORIZON < newest) this.drop(key, entry);
    }
  }

  private drop(key: string, entry: Pending): void {
    this.pending.delete(key);
    this.charged -= entry.bytes + entry.received * PART_OVERHEAD;
  }
}

/** Splits a message into parts of at most `size` bytes (one part if it fits). */
export function split(payload: Uint8Array, size: number): Uint8Array[] {
  if (payload.length <= size) return [payload];
  const parts: Uint8Array[] = [];
  for (let at = 0; at < payload.length; at += size) parts.push(payload.subarray(at, at + size));
  return parts;
}

export function partFlags(index: number, count: number): number {
  if (count === 1) return 0;
  let flags = BunchFlags.Partial;
  if (index === 0) flags |= BunchFlags.PartialInitial;
  if (index + 1 === count) flags |= BunchFlags.PartialFinal;
  return flags;
}
