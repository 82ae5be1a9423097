// MessagePack, as much of it as the protocol uses (PROTOCOL.md section 3), with the limits a
// client needs against a hostile or broken peer: every length is checked against the bytes
// that remain before anything is allocated, nesting is bounded, and trailing bytes are an
// error. 64-bit integers beyond 2^53 decode as `bigint`, never as a rounded number.

/** Why bytes could not be decoded; `offset` is where in the frame. */
export class DecodeError extends Error {
  constructor(
    readonly offset: number,
    detail: string,
  ) {
    super(`at byte ${offset}: ${detail}`);
    this.name = "DecodeError";
  }
}

/** A decoded MessagePack value. Maps have string keys (the protocol uses no others). */
export type Value = null | boolean | number | bigint | string | Uint8Array | Value[] | { [key: string]: Value };
// Floats are refused: the protocol has none (PROTOCOL.md section 3), and a game's values hold none.

/** Nesting deeper than this is refused, as the server's decoder does. */
const MAX_DEPTH = 16;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Out = new TextEncoder();

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  fail(detail: string, at = this.at): never {
    throw new DecodeError(at, detail);
  }

  need(n: number): void {
    if (n > this.bytes.length - this.at) this.fail(`truncated: ${n} bytes needed, ${this.bytes.length - this.at} left`);
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.at++]!;
  }

  uint(n: 1 | 2 | 4): number {
    this.need(n);
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + this.bytes[this.at++]!;
    return v;
  }

  u64(): bigint {
    this.need(8);
    let v = 0n;
    for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(this.bytes[this.at++]!);
    return v;
  }

  /** A count of items, each at least one byte: never more than the bytes left. */
  count(n: number, perItem: number): number {
    if (n * perItem > this.bytes.length - this.at) this.fail(`a length of ${n} with ${this.bytes.length - this.at} bytes left`);
    return n;
  }

  str(n: number): string {
    this.need(n);
    const start = this.at;
    this.at += n;
    try {
      return utf8.decode(this.bytes.subarray(start, this.at));
    } catch {
      return this.fail("a string that is not UTF-8", start);
    }
  }

  value(depth: number): Value {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH}`);
    const start = this.at;
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = this.uint(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
        this.need(n);
        const out = this.bytes.slice(this.at, this.at + n);
        this.at += n;
        return out;
      }
      case 0xca:
      case 0xcb:
        return this.fail("a float: the protocol has none", start);
      case 0xcc:
        return this.uint(1);
      case 0xcd:
        return this.uint(2);
      case 0xce:
        return this.uint(4);
      case 0xcf:
        return small(this.u64());
      case 0xd0: {
        const v = this.uint(1);
        return v >= 0x80 ? v - 0x100 : v;
      }
      case 0xd1: {
        const v = this.uint(2);
        return v >= 0x8000 ? v - 0x10000 : v;
      }
      case 0xd2: {
        const v = this.uint(4);
        return v >= 0x80000000 ? v - 0x100000000 : v;
      }
      case 0xd3:
        return small(BigInt.asIntN(64, this.u64()));
      case 0xd9:
        return this.str(this.uint(1));
      case 0xda:
        return this.str(this.uint(2));
      case 0xdb:
        return this.str(this.uint(4));
      case 0xdc:
        return this.array(this.uint(2), depth);
      case 0xdd:
        return this.array(this.uint(4), depth);
      case 0xde:
        return this.map(this.uint(2), depth);
      case 0xdf:
        return this.map(this.uint(4), depth);
      default:
        return this.fail(`0x${b.toString(16).padStart(2, "0")} is not a MessagePack value the protocol uses`, start);
    }
  }

  array(n: number, depth: number): Value[] {
    const out: Value[] = new Array(this.count(n, 1));
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  map(n: number, depth: number): { [key: string]: Value } {
    this.count(n, 2);
    const out: { [key: string]: Value } = {};
    for (let i = 0; i < n; i++) {
      const at = this.at;
      const key = this.value(depth + 1);
      if (typeof key !== "string") this.fail("a map key that is not a string", at);
      if (Object.hasOwn(out, key)) this.fail(`the map key ${JSON.stringify(key)} twice`, at);
      // defineProperty, so that a key such as "__proto__" is a plain key.
      Object.defineProperty(out, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
}

/** A 64-bit integer as a number when it is exact as one, otherwise as a bigint. */
function small(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Decode exactly one MessagePack value filling `bytes`. */
export function decode(bytes: Uint8Array): Value {
  const r = new Reader(bytes);
  const v = r.value(0);
  if (r.at !== bytes.length) r.fail(`${bytes.length - r.at} trailing bytes after the value`);
  return v;
}

/** Encode a value; integers take the smallest encoding, as the server's do. */
export function encode(value: unknown): Uint8Array {
  const out = new Writer();
  out.value(value, 0);
  return out.finish();
}

class Writer {
  buf = new Uint8Array(64);
  len = 0;

  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  be(v: number, n: 1 | 2 | 4): void {
    this.reserve(n);
    for (let i = n - 1; i >= 0; i--) {
      this.buf[this.len + i] = v & 0xff;
      v = Math.floor(v / 256);
    }
    this.len += n;
  }

  be64(v: bigint): void {
    this.reserve(8);
    const u = BigInt.asUintN(64, v);
    for (let i = 0; i < 8; i++) this.buf[this.len + i] = Number((u >> BigInt(56 - 8 * i)) & 0xffn);
    this.len += 8;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  int(v: number | bigint): void {
    if (typeof v === "number" && !Number.isSafeInteger(v)) {
      throw new TypeError(`${v} is not an integer: the protocol has no floats`);
    }
    const n = BigInt(v);
    if (n >= 0n) {
      if (n <= 0x7fn) this.byte(Number(n));
      else if (n <= 0xffn) (this.byte(0xcc), this.be(Number(n), 1));
      else if (n <= 0xffffn) (this.byte(0xcd), this.be(Number(n), 2));
      else if (n <= 0xffffffffn) (this.byte(0xce), this.be(Number(n), 4));
      else if (n <= 0xffffffffffffffffn) (this.byte(0xcf), this.be64(n));
      else throw new RangeError(`${n} does not fit 64 bits`);
    } else {
      if (n >= -32n) this.byte(0x100 + Number(n));
      else if (n >= -0x80n) (this.byte(0xd0), this.be(0x100 + Number(n), 1));
      else if (n >= -0x8000n) (this.byte(0xd1), this.be(0x10000 + Number(n), 2));
      else if (n >= -0x80000000n) (this.byte(0xd2), this.be(0x100000000 + Number(n), 4));
      else if (n >= -0x8000000000000000n) (this.byte(0xd3), this.be64(n));
      else throw new RangeError(`${n} does not fit 64 bits`);
    }
  }

  head(n: number, fix: number, fixMax: number, c16: number, c32: number, c8?: number): void {
    if (n <= fixMax) this.byte(fix | n);
    else if (c8 !== undefined && n <= 0xff) (this.byte(c8), this.be(n, 1));
    else if (n <= 0xffff) (this.byte(c16), this.be(n, 2));
    else (this.byte(c32), this.be(n, 4));
  }

  value(v: unknown, depth: number): void {
    if (depth > MAX_DEPTH) throw new RangeError(`nested deeper than ${MAX_DEPTH}`);
    if (v === null || v === undefined) this.byte(0xc0);
    else if (v === false) this.byte(0xc2);
    else if (v === true) this.byte(0xc3);
    else if (typeof v === "number" || typeof v === "bigint") this.int(v);
    else if (typeof v === "string") {
      const b = utf8Out.encode(v);
      this.head(b.length, 0xa0, 31, 0xda, 0xdb, 0xd9);
      this.bytes(b);
    } else if (v instanceof Uint8Array) {
      if (v.length <= 0xff) (this.byte(0xc4), this.be(v.length, 1));
      else if (v.length <= 0xffff) (this.byte(0xc5), this.be(v.length, 2));
      else (this.byte(0xc6), this.be(v.length, 4));
      this.bytes(v);
    } else if (Array.isArray(v)) {
      this.head(v.length, 0x90, 15, 0xdc, 0xdd);
      for (const item of v) this.value(item, depth + 1);
    } else if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      this.head(entries.length, 0x80, 15, 0xde, 0xdf);
      for (const [k, x] of entries) {
        this.value(k, depth + 1);
        this.value(x, depth + 1);
      }
    } else throw new TypeError(`a ${typeof v} cannot be encoded`);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
