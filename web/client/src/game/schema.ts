// A game's schema (crates/hearth-replica/src/schema.rs): its kinds of actor
// with typed properties and its messages, the canonical encoding whose hash
// is the schema's version, and the value encoding every property and field
// uses. Integers travel as their distance above the type's minimum. An
// integer type whose whole range is a safe JavaScript integer gives
// `number`s; wider ranges give `bigint`s.

import { DecodeError, Reader, Writer } from "../bytes.js";

export type Scalar =
  | { type: "bool" }
  | { type: "int"; min: bigint; max: bigint }
  | { type: "fixed"; scale: number; min: bigint; max: bigint }
  | { type: "enum"; variants: string[] };

export type ValueType = Scalar | { type: "str"; max_bytes: number } | { type: "list"; item: Scalar; max_len: number };

export type Visibility = "everyone" | "owner" | "server";
export type Delivery = "frame" | "reliable";
export type Direction = "to_server" | "to_client";

export interface PropSpec {
  name: string;
  ty: ValueType;
  visibility: Visibility;
  delivery: Delivery;
}

/** How the server moves a kind's actors; a moving kind's first two properties are its position, `x` and `y`. */
export interface Movement {
  /** Fastest legal speed, cells per second. */
  speed: number;
  /** Walls of the zone's map stop it. */
  collides: boolean;
}

export interface KindSpec {
  name: string;
  /** Absent for a kind that does not move (every player of the line sees it). */
  movement?: Movement;
  props: PropSpec[];
}

export interface FieldSpec {
  name: string;
  ty: ValueType;
}

export interface MessageSpec {
  name: string;
  direction: Direction;
  fields: FieldSpec[];
  rate: { burst: number; per_second: number } | null;
}

export interface Schema {
  game: string;
  kinds: KindSpec[];
  messages: MessageSpec[];
  /** 16 hex digits: FNV-1a 64 of the canonical encoding. */
  version: string;
}

/** An integer (or fixed-point raw value, or enum index): `number` or `bigint` by its type's range. */
export type Int = number | bigint;
export type Value = boolean | Int | string | Int[];

// The same bounds as the Rust decoder's.
const MAX_KINDS = 64;
const MAX_PROPS = 64;
const MAX_MESSAGES = 128;
const MAX_FIELDS = 32;
const MAX_NAME = 32;
const MAX_VARIANTS = 256;
const MAX_STRING = 1024;
const MAX_LIST = 256;
export const MAX_SCHEMA_BYTES = 64 * 1024;
const SCHEMA_FORMAT = 2;

const TYPE = { bool: 1, int: 2, fixed: 3, enum: 4, str: 5, list: 6 } as const;
const VISIBILITY: Visibility[] = ["everyone", "owner", "server"];
const DELIVERY: Delivery[] = ["frame", "reliable"];
const DIRECTION: Direction[] = ["to_server", "to_client"];

const U64 = (1n << 64n) - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** A LEB128 varint of up to 64 bits, as a bigint. */
export function readVarintBig(r: Reader, what: string): bigint {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const byte = r.u8(what);
    const group = BigInt(byte & 0x7f);
    if (i === 9 && group > 1n) throw new DecodeError(`${what}: varint beyond 64 bits`);
    value |= group << BigInt(7 * i);
    if (byte < 0x80) return value;
  }
  throw new DecodeError(`${what}: varint longer than 10 bytes`);
}

export function writeVarintBig(w: Writer, value: bigint): void {
  let rest = BigInt.asUintN(64, value);
  while (rest >= 0x80n) {
    w.u8(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  w.u8(Number(rest));
}

function zigzag(value: bigint): bigint {
  return BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
}

function unzigzag(value: bigint): bigint {
  return BigInt.asIntN(64, (value >> 1n) ^ -(value & 1n));
}

/** The inclusive range of a scalar's raw values. */
export function bounds(scalar: Scalar): [bigint, bigint] {
  switch (scalar.type) {
    case "bool":
      return [0n, 1n];
    case "int":
    case "fixed":
      return [scalar.min, scalar.max];
    case "enum":
      return [0n, BigInt(scalar.variants.length - 1)];
  }
}

/** Whether this scalar's values are JavaScript numbers (else bigints). */
export function isNumberScalar(scalar: Scalar): boolean {
  const [min, max] = bounds(scalar);
  return min >= SAFE_MIN && max <= SAFE_MAX;
}

function toInt(scalar: Scalar, raw: bigint): Int {
  return isNumberScalar(scalar) ? Number(raw) : raw;
}

function writeScalar(w: Writer, scalar: Scalar, value: Int): void {
  const [min, max] = bounds(scalar);
  const v = BigInt(value);
  if (v < min || v > max) throw new RangeError(`${v} is outside ${min}..=${max}`);
  writeVarintBig(w, v - min);
}

function readScalar(r: Reader, scalar: Scalar): bigint {
  const [min, max] = bounds(scalar);
  const raw = readVarintBig(r, "value");
  if (raw > max - min) throw new DecodeError("value out of range");
  return min + raw;
}

/** The value a property starts with: zero clamped into range, false, "", []. */
export function defaultValue(ty: ValueType): Value {
  switch (ty.type) {
    case "bool":
      return false;
    case "str":
      return "";
    case "list":
      return [];
    default: {
      const [min, max] = bounds(ty);
      const zero = 0n < min ? min : 0n > max ? max : 0n;
      return toInt(ty, zero);
    }
  }
}

export function writeValue(w: Writer, ty: ValueType, value: Value): void {
  switch (ty.type) {
    case "bool":
      if (typeof value !== "boolean") throw new TypeError("expected a boolean");
      w.u8(value ? 1 : 0);
      return;
    case "str": {
      if (typeof value !== "string") throw new TypeError("expected a string");
      const bytes = new TextEncoder().encode(value);
      if (bytes.length > ty.max_bytes) throw new RangeError(`a string of at most ${ty.max_bytes} bytes`);
      w.prefixed(bytes);
      return;
    }
    case "list": {
      if (!Array.isArray(value)) throw new TypeError("expected a list");
      if (value.length > ty.max_len) throw new RangeError(`a list of at most ${ty.max_len} items`);
      w.varint(value.length);
      for (const item of value) writeScalar(w, ty.item, item);
      return;
    }
    default:
      if (typeof value !== "number" && typeof value !== "bigint") throw new TypeError("expected an integer");
      writeScalar(w, ty, value);
  }
}

export function readValue(r: Reader, ty: ValueType): Value {
  switch (ty.type) {
    case "bool": {
      const b = r.u8("bool");
      if (b > 1) throw new DecodeError("bool out of range");
      return b === 1;
    }
    case "str":
      return r.str(ty.max_bytes, "string value");
    case "list": {
      const count = r.varint("list length");
      if (count > ty.max_len || count > r.remaining) throw new DecodeError("list length out of range");
      const items: Int[] = [];
      for (let i = 0; i < count; i++) items.push(toInt(ty.item, readScalar(r, ty.item)));
      return items;
    }
    default:
      return toInt(ty, readScalar(r, ty));
  }
}

/** Whether two values are the same (lists item by item). */
export function sameValue(a: Value, b: Value): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}

function writeScalarType(w: Writer, scalar: Scalar): void {
  switch (scalar.type) {
    case "bool":
      w.u8(TYPE.bool);
      return;
    case "int":
      w.u8(TYPE.int);
      writeVarintBig(w, zigzag(scalar.min));
      writeVarintBig(w, zigzag(scalar.max));
      return;
    case "fixed":
      w.u8(TYPE.fixed);
      w.varint(scalar.scale);
      writeVarintBig(w, zigzag(scalar.min));
      writeVarintBig(w, zigzag(scalar.max));
      return;
    case "enum":
      w.u8(TYPE.enum);
      w.varint(scalar.variants.length);
      for (const v of scalar.variants) w.str(v);
  }
}

function writeType(w: Writer, ty: ValueType): void {
  if (ty.type === "str") {
    w.u8(TYPE.str);
    w.varint(ty.max_bytes);
  } else if (ty.type === "list") {
    w.u8(TYPE.list);
    w.varint(ty.max_len);
    writeScalarType(w, ty.item);
  } else {
    writeScalarType(w, ty);
  }
}

function count(r: Reader, max: number, what: string): number {
  const n = r.varint(what);
  if (n > max || n > r.remaining) throw new DecodeError(`${what} out of range`);
  return n;
}

function readScalarType(r: Reader, code: number): Scalar {
  switch (code) {
    case TYPE.bool:
      return { type: "bool" };
    case TYPE.int:
      return { type: "int", min: unzigzag(readVarintBig(r, "minimum")), max: unzigzag(readVarintBig(r, "maximum")) };
    case TYPE.fixed:
      return {
        type: "fixed",
        scale: r.varint32("scale"),
        min: unzigzag(readVarintBig(r, "minimum")),
        max: unzigzag(readVarintBig(r, "maximum")),
      };
    case TYPE.enum: {
      const n = count(r, MAX_VARIANTS, "variant count");
      const variants: string[] = [];
      for (let i = 0; i < n; i++) variants.push(r.str(MAX_NAME, "variant"));
      return { type: "enum", variants };
    }
    default:
      throw new DecodeError(`unknown value type ${code}`);
  }
}

function readType(r: Reader): ValueType {
  const code = r.u8("value type");
  if (code === TYPE.str) {
    const max_bytes = r.varint("string limit");
    if (max_bytes < 1 || max_bytes > MAX_STRING) throw new DecodeError("string limit out of range");
    return { type: "str", max_bytes };
  }
  if (code === TYPE.list) {
    const max_len = r.varint("list limit");
    if (max_len < 1 || max_len > MAX_LIST) throw new DecodeError("list limit out of range");
    return { type: "list", max_len, item: readScalarType(r, r.u8("list item type")) };
  }
  return readScalarType(r, code);
}

function pick<T>(values: readonly T[], index: number, what: string): T {
  const value = values[index];
  if (value === undefined) throw new DecodeError(`${what} out of range`);
  return value;
}

/** The canonical encoding (what the version hashes). */
export function encodeSchema(schema: Omit<Schema, "version">): Uint8Array {
  const w = new Writer();
  w.u8(SCHEMA_FORMAT).str(schema.game).varint(schema.kinds.length);
  for (const kind of schema.kinds) {
    w.str(kind.name);
    if (kind.movement) w.u8(1).varint(kind.movement.speed).u8(kind.movement.collides ? 1 : 0);
    else w.u8(0);
    w.varint(kind.props.length);
    for (const prop of kind.props) {
      w.str(prop.name);
      writeType(w, prop.ty);
      w.u8(VISIBILITY.indexOf(prop.visibility)).u8(DELIVERY.indexOf(prop.delivery));
    }
  }
  w.varint(schema.messages.length);
  for (const message of schema.messages) {
    w.str(message.name).u8(DIRECTION.indexOf(message.direction));
    if (message.rate) w.varint(message.rate.burst).varint(message.rate.per_second);
    w.varint(message.fields.length);
    for (const field of message.fields) {
      w.str(field.name);
      writeType(w, field.ty);
    }
  }
  return w.finish();
}

/** FNV-1a, 64 bits, as 16 hex digits. */
export function schemaVersion(encoded: Uint8Array): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of encoded) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & U64;
  return hash.toString(16).padStart(16, "0");
}

function readBool(r: Reader, what: string): boolean {
  const byte = r.u8(what);
  if (byte > 1) throw new DecodeError(`${what} out of range`);
  return byte === 1;
}

/** Reads a schema as the server encodes it; counts are checked before anything is built. */
export function decodeSchema(bytes: Uint8Array): Schema {
  if (bytes.length > MAX_SCHEMA_BYTES) throw new DecodeError("schema too long");
  const r = new Reader(bytes);
  if (r.u8("schema format") !== SCHEMA_FORMAT) throw new DecodeError("unknown schema format");
  const game = r.str(MAX_NAME, "game name");
  const kinds: KindSpec[] = [];
  for (let k = count(r, MAX_KINDS, "kind count"); k > 0; k--) {
    const name = r.str(MAX_NAME, "kind name");
    const movement = readBool(r, "movement") ? { speed: r.varint("speed"), collides: readBool(r, "collides") } : undefined;
    const props: PropSpec[] = [];
    for (let p = count(r, MAX_PROPS, "property count"); p > 0; p--) {
      props.push({
        name: r.str(MAX_NAME, "property name"),
        ty: readType(r),
        visibility: pick(VISIBILITY, r.u8("visibility"), "visibility"),
        delivery: pick(DELIVERY, r.u8("delivery"), "delivery"),
      });
    }
    kinds.push(movement ? { name, movement, props } : { name, props });
  }
  const messages: MessageSpec[] = [];
  for (let m = count(r, MAX_MESSAGES, "message count"); m > 0; m--) {
    const name = r.str(MAX_NAME, "message name");
    const direction = pick(DIRECTION, r.u8("direction"), "direction");
    const rate = direction === "to_server" ? { burst: r.varint32("burst"), per_second: r.varint32("rate") } : null;
    const fields: FieldSpec[] = [];
    for (let f = count(r, MAX_FIELDS, "field count"); f > 0; f--) {
      fields.push({ name: r.str(MAX_NAME, "field name"), ty: readType(r) });
    }
    messages.push({ name, direction, fields, rate });
  }
  r.finish("schema");
  const schema = { game, kinds, messages, version: schemaVersion(bytes) };
  checkSchema(schema);
  return schema;
}

/** Largest speed a moving kind may have, cells per second (as the Rust schema). */
export const MAX_SPEED = 1000;
/** A moving kind's position coordinate: fixed-point hundredths of a cell over the largest zone. */
function isPosition(ty: ValueType): boolean {
  return ty.type === "fixed" && ty.scale === 100 && ty.min === 0n && ty.max === 1024n * 100n;
}

/** The checks of the Rust `Schema::new`: a schema that passes there passes here, and one refused there is refused here. */
export function checkSchema(schema: Omit<Schema, "version">): void {
  const fail = (at: string, why: string): never => {
    throw new DecodeError(`schema: ${at}: ${why}`);
  };
  const name = (text: string, at: string) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(text) || text.length > MAX_NAME) fail(at, `${JSON.stringify(text)} is not a name`);
  };
  const unique = (names: string[], at: string) => {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) fail(at, `${JSON.stringify(n)} is declared twice`);
      seen.add(n);
    }
  };
  const scalar = (ty: Scalar, at: string) => {
    if ((ty.type === "int" || ty.type === "fixed") && ty.min > ty.max) fail(at, "the minimum is above the maximum");
    if (ty.type === "fixed" && ty.scale < 1) fail(at, "a fixed-point scale is at least 1");
    if (ty.type === "enum") {
      if (ty.variants.length < 1) fail(at, "an enum has at least one variant");
      ty.variants.forEach((v) => name(v, at));
      unique(ty.variants, `variant of ${at}`);
    }
  };
  const type = (ty: ValueType, at: string) => (ty.type === "list" ? scalar(ty.item, at) : ty.type === "str" ? undefined : scalar(ty, at));
  name(schema.game, "game");
  unique(schema.kinds.map((k) => k.name), "kind");
  for (const kind of schema.kinds) {
    name(kind.name, "kind");
    unique(kind.props.map((p) => p.name), `property of ${kind.name}`);
    kind.props.forEach((p) => {
      name(p.name, `${kind.name}.${p.name}`);
      type(p.ty, `${kind.name}.${p.name}`);
    });
    if (kind.movement) {
      if (kind.movement.speed < 1 || kind.movement.speed > MAX_SPEED) fail(kind.name, `a moving kind's speed is 1 to ${MAX_SPEED}`);
      const position = (p: PropSpec | undefined, n: string) =>
        p?.name === n && p.visibility === "everyone" && p.delivery === "frame" && isPosition(p.ty);
      if (!position(kind.props[0], "x") || !position(kind.props[1], "y")) fail(kind.name, "a moving kind starts with its position (x, y)");
    }
  }
  unique(schema.messages.map((m) => m.name), "message");
  for (const message of schema.messages) {
    name(message.name, "message");
    unique(message.fields.map((f) => f.name), `field of ${message.name}`);
    message.fields.forEach((f) => {
      name(f.name, `${message.name}.${f.name}`);
      type(f.ty, `${message.name}.${f.name}`);
    });
    if (message.direction === "to_server" && (!message.rate || message.rate.burst < 1)) fail(message.name, "a message to the server needs a rate limit with a burst of at least 1");
    if (message.direction === "to_client" && message.rate) fail(message.name, "only messages to the server have a rate limit");
  }
}


/** The bit mask of the properties of `kind` a client sees (owner-only ones when it owns the actor). */
export function visibleMask(kind: KindSpec, owned: boolean): bigint {
  let mask = 0n;
  kind.props.forEach((prop, index) => {
    if (prop.visibility === "everyone" || (prop.visibility === "owner" && owned)) mask |= 1n << BigInt(index);
  });
  return mask;
}
