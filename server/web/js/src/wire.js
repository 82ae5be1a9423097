// Between the wire's forms and the typed, named values of generated/protocol.ts.
//
// MessagePack carries structs as arrays in field order; the JSON feed carries them as objects
// and state hashes as strings of digits. Both become the same named values here, walked by
// the table `WIRE` that is generated from the Rust protocol crate, so the field orders cannot
// drift from the server's. Every integer is checked against its type.
import { WIRE } from "./generated/protocol.js";
import { DecodeError } from "./msgpack.js";
const RANGES = {
    u16: [0, 0xffff],
    u32: [0, 0xffffffff],
    i32: [-0x80000000, 0x7fffffff],
    // u64 values other than hashes (ids, ticks, seqs, nonces) must stay exact in a number.
    u64: [0, Number.MAX_SAFE_INTEGER],
};
function fail(at, detail) {
    throw new DecodeError(0, `${at}: ${detail}`);
}
function struct(value, fields, form, at) {
    const out = {};
    if (form === "msgpack") {
        if (!Array.isArray(value))
            fail(at, `expected an array of ${fields.length} fields`);
        if (value.length !== fields.length)
            fail(at, `${value.length} values for ${fields.length} fields`);
        fields.forEach(([name, ty], i) => {
            out[name] = convert(value[i], ty, form, `${at}.${name}`);
        });
    }
    else {
        if (typeof value !== "object" || value === null || Array.isArray(value))
            fail(at, "expected an object");
        const o = value;
        for (const [name, ty] of fields) {
            if (!(name in o))
                fail(at, `the field ${name} is missing`);
            out[name] = convert(o[name], ty, form, `${at}.${name}`);
        }
    }
    return out;
}
/** `value`, received in `form`, as the named value of type `ty`. Throws a DecodeError naming the field. */
export function convert(value, ty, form, at = String(ty)) {
    if (Array.isArray(ty)) {
        const [kind, inner] = ty;
        if (kind === "opt")
            return value === null ? null : convert(value, inner, form, at);
        if (!Array.isArray(value))
            fail(at, "expected an array");
        return value.map((v, i) => convert(v, inner, form, `${at}[${i}]`));
    }
    const range = RANGES[ty];
    if (range) {
        if (typeof value !== "number" || !Number.isInteger(value) || value < range[0] || value > range[1]) {
            fail(at, `${String(value)} is not a ${ty}${ty === "u64" ? " (below 2^53)" : ""}`);
        }
        return value;
    }
    switch (ty) {
        case "str":
            if (typeof value !== "string")
                fail(at, "expected a string");
            return value;
        case "hash": {
            const h = typeof value === "string" && /^[0-9]{1,20}$/.test(value) ? BigInt(value) : value;
            if (typeof h === "number" && Number.isInteger(h) && h >= 0)
                return BigInt(h);
            if (typeof h === "bigint" && h >= 0n && h <= 0xffffffffffffffffn)
                return h;
            return fail(at, "expected a 64-bit state hash");
        }
        case "game":
            return gameValue(value, at);
    }
    const shape = WIRE[ty];
    if (!shape)
        return fail(at, `no wire type ${ty}`);
    if ("alias" in shape)
        return convert(value, shape.alias, form, at);
    if ("struct" in shape)
        return struct(value, shape.struct, form, `${at}`);
    let wire;
    let inner;
    if (typeof value === "string") {
        wire = value;
    }
    else if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1) {
        wire = Object.keys(value)[0];
        inner = value[wire];
    }
    else {
        return fail(at, `a ${ty} is a name or a one-entry map`);
    }
    const variant = Object.hasOwn(shape.enum, wire) ? shape.enum[wire] : undefined;
    if (variant === undefined) {
        if (shape.open)
            return gameValue(value, at);
        return fail(at, `${ty} has no variant ${JSON.stringify(wire)}`);
    }
    if (variant === "unit") {
        if (typeof value !== "string")
            fail(at, `${ty}::${wire} is a name alone`);
        return wire;
    }
    if (typeof value === "string")
        fail(at, `${ty}::${wire} has a value`);
    const out = {};
    out[wire] =
        "struct" in variant ? struct(inner, variant.struct, form, `${at}.${wire}`) : convert(inner, variant.newtype, form, `${at}.${wire}`);
    return out;
}
function gameValue(value, at) {
    if (typeof value === "string")
        return value;
    if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1)
        return value;
    return fail(at, "a game value is a name or a one-entry map");
}
/** The named value `value` of type `ty` in its MessagePack form (structs as arrays), ready to encode. */
export function toWire(value, ty, at = String(ty)) {
    if (Array.isArray(ty)) {
        const [kind, inner] = ty;
        if (kind === "opt")
            return value === null || value === undefined ? null : toWire(value, inner, at);
        if (!Array.isArray(value))
            throw new TypeError(`${at}: expected an array`);
        return value.map((v, i) => toWire(v, inner, `${at}[${i}]`));
    }
    const range = RANGES[ty];
    if (range) {
        if (typeof value !== "number" || !Number.isInteger(value) || value < range[0] || value > range[1]) {
            throw new RangeError(`${at}: ${String(value)} is not a ${ty}`);
        }
        return value;
    }
    switch (ty) {
        case "str":
            if (typeof value !== "string")
                throw new TypeError(`${at}: expected a string`);
            return value;
        case "hash":
            if (typeof value !== "bigint")
                throw new TypeError(`${at}: expected a bigint hash`);
            return value;
        case "game":
            return value;
    }
    const shape = WIRE[ty];
    if (!shape)
        throw new TypeError(`${at}: no wire type ${ty}`);
    if ("alias" in shape)
        return toWire(value, shape.alias, at);
    const fields = (fs, v, where) => {
        if (typeof v !== "object" || v === null)
            throw new TypeError(`${where}: expected an object`);
        const o = v;
        return fs.map(([name, t]) => toWire(o[name], t, `${where}.${name}`));
    };
    if ("struct" in shape)
        return fields(shape.struct, value, at);
    if (typeof value === "string") {
        if (shape.enum[value] === "unit" || shape.open)
            return value;
        throw new TypeError(`${at}: ${ty} has no unit variant ${value}`);
    }
    if (typeof value !== "object" || value === null || Object.keys(value).length !== 1) {
        throw new TypeError(`${at}: a ${ty} is a name or a one-entry object`);
    }
    const wire = Object.keys(value)[0];
    const inner = value[wire];
    const variant = Object.hasOwn(shape.enum, wire) ? shape.enum[wire] : undefined;
    if (variant === undefined) {
        if (shape.open)
            return value;
        throw new TypeError(`${at}: ${ty} has no variant ${wire}`);
    }
    if (variant === "unit")
        throw new TypeError(`${at}: ${ty}::${wire} is a name alone`);
    const out = {};
    out[wire] = "struct" in variant ? fields(variant.struct, inner, `${at}.${wire}`) : toWire(inner, variant.newtype, `${at}.${wire}`);
    return out;
}
/** The value of variant `name` of an enum value, or undefined: `variant(event.kind, "player_hit")?.damage`. */
export function variant(value, name) {
    if (typeof value === "object" && value !== null && Object.hasOwn(value, name)) {
        return value[name];
    }
    return undefined;
}
