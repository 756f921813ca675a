// Byte encoding shared by every layer: big-endian integers, LEB128 varints,
// length-prefixed strings (docs/PROTOCOL.md, preamble). Numbers above 2^53
// (session ids, 64-bit counters) are bigints; everything else is a number.

/** A message did not decode: says what was being read and why. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Grows as it is written to; `finish()` returns exactly the bytes written. */
export class Writer {
  private buffer: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(capacity = 64) {
    this.buffer = new Uint8Array(capacity);
    this.view = new DataView(this.buffer.buffer);
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
    this.view = new DataView(bigger.buffer);
  }

  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  u16(value: number): this {
    this.reserve(2);
    this.view.setUint16(this.length, value);
    this.length += 2;
    return this;
  }

  u32(value: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, value >>> 0);
    this.length += 4;
    return this;
  }

  u64(value: bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, value));
    this.length += 8;
    return this;
  }

  /** LEB128, at most 2^53 - 1 as a number (use `varintBig` beyond). */
  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`varint out of range: ${value}`);
    }
    this.reserve(10);
    while (value >= 0x80) {
      this.buffer[this.length++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buffer[this.length++] = value;
    return this;
  }

  /** Zigzag-encoded signed 32-bit integer, as a varint. */
  ivar(value: number): this {
    return this.varint(((value << 1) ^ (value >> 31)) >>> 0);
  }

  bytes(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  /** A varint length, then the bytes. */
  prefixed(bytes: Uint8Array): this {
    return this.varint(bytes.length).bytes(bytes);
  }

  str(text: string): this {
    return this.prefixed(utf8(text));
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Reads a message front to back; every read names what it reads, for errors. */
export class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get remaining(): number {
    return this.data.length - this.offset;
  }

  private need(count: number, what: string): number {
    if (this.remaining < count) {
      throw new DecodeError(`truncated ${what}: needs ${count} bytes, ${this.remaining} left`);
    }
    const at = this.offset;
    this.offset += count;
    return at;
  }

  u8(what: string): number {
    return this.data[this.need(1, what)]!;
  }

  u16(what: string): number {
    return this.view.getUint16(this.need(2, what));
  }

  u32(what: string): number {
    return this.view.getUint32(this.need(4, what));
  }

  u64(what: string): bigint {
    return this.view.getBigUint64(this.need(8, what));
  }

  /** A varint that must fit in 2^53 - 1 (every count and sequence in practice). */
  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new DecodeError(`${what} is too large`);
        return value;
      }
      scale *= 0x80;
    }
    throw new DecodeError(`${what}: varint longer than 10 bytes`);
  }

  /** A varint limited to 32 bits (the world protocol's `varint`). */
  varint32(what: string): number {
    const value = this.varint(what);
    if (value > 0xffffffff) throw new DecodeError(`${what} exceeds 32 bits`);
    return value;
  }

  ivar(what: string): number {
    const raw = this.varint32(what);
    return (raw >>> 1) ^ -(raw & 1);
  }

  bytes(count: number, what: string): Uint8Array {
    const at = this.need(count, what);
    return this.data.subarray(at, at + count);
  }

  prefixed(max: number, what: string): Uint8Array {
    const length = this.varint(what);
    if (length > max) throw new DecodeError(`${what} is ${length} bytes, the limit is ${max}`);
    return this.bytes(length, what);
  }

  str(max: number, what: string): string {
    const raw = this.prefixed(max, what);
    try {
      return utf8Decoder.decode(raw);
    } catch {
      throw new DecodeError(`${what} is not valid UTF-8`);
    }
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining, "rest");
  }

  /** Fails if anything is left: trailing bytes mean a broken or hostile peer. */
  finish(what: string): void {
    if (this.remaining !== 0) {
      throw new DecodeError(`${this.remaining} bytes left over after ${what}`);
    }
  }
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) {
    throw new Error(`not a hex string: ${hex.slice(0, 16)}…`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
