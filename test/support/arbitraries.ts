// fast-check generators for the wire types, built from the .proto files
// themselves (the single source of truth), so a message or field added there
// is fuzzed without touching the tests; a plain-data view of decoded messages
// to compare them with; and an independent model of the peer framing.
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { Long } from '../../workloads/protocol/index.js';

const protoFile = (name: string) => fileURLToPath(new URL(`../../../workloads/protocol/${name}.proto`, import.meta.url));
const peerRoot = protobuf.loadSync(protoFile('peer'));
const clientRoot = protobuf.loadSync(protoFile('client'));
peerRoot.resolveAll();
clientRoot.resolveAll();

export const PeerFrameType = peerRoot.lookupType('groupchat.peer.PeerFrame');
export const ClientFrameType = clientRoot.lookupType('groupchat.client.ClientFrame');
export const ServerFrameType = clientRoot.lookupType('groupchat.client.ServerFrame');

/** The names a frame's `body` can take, from the .proto. */
export function bodiesOf(type: protobuf.Type): string[] {
  return type.oneofs['body']!.fieldsArray.map((f) => f.name);
}

/** Every oneof name in both files: decoded messages carry them as discriminator keys. */
const ONEOF_NAMES = new Set<string>();
for (const root of [peerRoot, clientRoot]) {
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) for (const o of nested.oneofsArray) ONEOF_NAMES.add(o.name);
      if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) visit(nested);
    }
  };
  visit(root);
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((b) => Long.fromString(b.toString(), true));
const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((b) => Long.fromString(b.toString(), false));
const bytes = fc.uint8Array({ maxLength: 48 });
const text = fc.string({ unit: 'binary', maxLength: 16 });

function scalar(type: string): fc.Arbitrary<unknown> {
  switch (type) {
    case 'uint32': case 'fixed32': return u32;
    case 'int32': case 'sint32': case 'sfixed32': return i32;
    case 'uint64': case 'fixed64': return u64;
    case 'int64': case 'sint64': case 'sfixed64': return i64;
    case 'bool': return fc.boolean();
    case 'string': return text;
    case 'bytes': return bytes;
    case 'double': return fc.double({ noNaN: true });
    case 'float': return fc.float({ noNaN: true, noDefaultInfinity: true }).map((f) => Math.fround(f));
    default: throw new Error(`no arbitrary for proto type ${type}`);
  }
}

const MAX_DEPTH = 3;
const cache = new Map<string, fc.Arbitrary<Record<string, unknown>>>();

function field(f: protobuf.Field, depth: number): fc.Arbitrary<unknown> {
  let value: fc.Arbitrary<unknown>;
  if (f.resolvedType instanceof protobuf.Type) {
    value = depth >= MAX_DEPTH ? fc.constant({}) : messageArb(f.resolvedType, depth + 1);
  } else if (f.resolvedType instanceof protobuf.Enum) {
    // Open enums: a value the receiver does not know must be survivable too.
    value = fc.constantFrom(...Object.values(f.resolvedType.values), 99);
  } else {
    value = scalar(f.type);
  }
  return f.repeated ? fc.array(value, { maxLength: 3 }) : value;
}

/** Any message of this type: every plain field optional, each oneof one of its members or none. */
export function messageArb(type: protobuf.Type, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const key = `${type.fullName}@${depth}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const plainFields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of type.fieldsArray) if (!f.partOf) plainFields[f.name] = field(f, depth);
  const oneofs = type.oneofsArray.map((o) => fc.oneof(
    fc.constant({}),
    ...o.fieldsArray.map((f) => fc.record({ [f.name]: field(f, depth) })),
  ));
  const arb = fc.tuple(fc.record(plainFields, { requiredKeys: [] }), ...oneofs)
    .map((parts) => Object.assign({}, ...parts) as Record<string, unknown>);
  cache.set(key, arb);
  return arb;
}

export const peerFrameArb = messageArb(PeerFrameType);
export const clientFrameArb = messageArb(ClientFrameType);
export const serverFrameArb = messageArb(ServerFrameType);

/** The body a generated frame has: the oneof member it set, if any. */
export function generatedBody(type: protobuf.Type, frame: Record<string, unknown>): string | undefined {
  return bodiesOf(type).find((name) => frame[name] !== undefined);
}

/**
 * A message as plain data with proto3 defaults dropped, so a sent object and
 * the decoded one compare equal: 64-bit values as decimal strings, bytes as
 * hex, a present (even empty) sub-message as an object.
 */
export function plain(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (Long.isLong(value)) {
    const v = value as Long;
    return v.isZero() ? undefined : v.toString();
  }
  if (value instanceof Uint8Array) return value.length ? Buffer.from(value).toString('hex') : undefined;
  if (Array.isArray(value)) return value.length ? value.map((v) => plain(v) ?? null) : undefined;
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (ONEOF_NAMES.has(key) || key === '$unknowns') continue;
      const p = plain(v);
      if (p !== undefined) out[key] = p;
    }
    return out;
  }
  if (value === 0 || value === '' || value === false) return undefined;
  if (typeof value === 'number' && Object.is(value, -0)) return undefined;
  return value;
}

export type FramingOutcome = { frames: Buffer[]; error: 'FRAME_TOO_LARGE' | 'MALFORMED_LENGTH' | null; tail: number };

/** The framing rules, written out again independently of FrameDecoder. */
export function modelFraming(stream: Uint8Array, limit: number): FramingOutcome {
  const frames: Buffer[] = [];
  let offset = 0;
  while (offset < stream.length) {
    let length = 0;
    let used = 0;
    let ended = false;
    while (used < 5 && offset + used < stream.length) {
      const byte = stream[offset + used]!;
      length += (byte & 0x7f) * 2 ** (7 * used);
      used++;
      if (byte < 0x80) { ended = true; break; }
    }
    if (!ended) {
      if (used === 5) return { frames, error: 'MALFORMED_LENGTH', tail: stream.length - offset };
      return { frames, error: null, tail: stream.length - offset };
    }
    if (length > limit) return { frames, error: 'FRAME_TOO_LARGE', tail: stream.length - offset };
    if (offset + used + length > stream.length) return { frames, error: null, tail: stream.length - offset };
    frames.push(Buffer.from(stream.subarray(offset + used, offset + used + length)));
    offset += used + length;
  }
  return { frames, error: null, tail: 0 };
}

/** Cuts bytes at the given points (any order, repeats allowed: empty chunks too). */
export function chunk(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [0, ...cuts.map((c) => Math.min(c, bytes.length)).sort((a, b) => a - b), bytes.length];
  const out: Buffer[] = [];
  for (let i = 1; i < points.length; i++) out.push(Buffer.from(bytes.subarray(points[i - 1]!, points[i]!)));
  return out;
}

/** Byte-level mutations of a valid encoding: what a bit flip, a lost or an extra byte does. */
export const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);
export type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

export function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out = [...input];
  for (const m of mutations) {
    const at = out.length ? m.at % (out.length + (m.op === 'insert' ? 1 : 0)) : 0;
    switch (m.op) {
      case 'flip': if (out.length) out[at] = out[at]! ^ (1 << m.bit); break;
      case 'set': if (out.length) out[at] = m.byte; break;
      case 'insert': out.splice(at, 0, m.byte); break;
      case 'delete': out.splice(at, 1); break;
      case 'truncate': out = out.slice(0, at); break;
    }
  }
  return Uint8Array.from(out);
}
