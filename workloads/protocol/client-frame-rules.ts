// What a ClientFrame must satisfy beyond decoding, checked where a gateway
// reads it from a user (docs/protocol.md §1, §7). Protobuf decoding alone
// lets two of the contract's rules pass: a frame with two bodies decodes
// (the last one wins), and a uint32 field holding a wider varint decodes to
// its low 32 bits (room 2^32 + 7 would be room 7). Both are refused here, by
// field numbers and types read from client.proto (its JSON form, which the
// build generates beside the static code).
import { readFileSync } from 'node:fs';

interface JsonField { type: string; id: number; protoName?: string }
interface JsonType { fields?: Record<string, JsonField>; oneofs?: Record<string, { oneof: string[] }> }
const types = (JSON.parse(readFileSync(new URL('./generated/client.json', import.meta.url), 'utf8')) as {
  nested: { groupchat: { nested: { client: { nested: Record<string, JsonType> } } } };
}).nested.groupchat.nested.client.nested;

/** The field names a ClientFrame's `body` can take. */
export const CLIENT_FRAME_BODIES: readonly string[] = types['ClientFrame']!.oneofs!['body']!.oneof;

/** A message type's fields by number: the ones this check reads (uint32 scalars, nested messages). */
interface Shape { readonly uint32: Map<number, string>; readonly nested: Map<number, { name: string; shape: Shape }> }
const shapes = new Map<string, Shape>();
for (const name of Object.keys(types)) if (types[name]!.fields) shapes.set(name, { uint32: new Map(), nested: new Map() });
for (const [name, shape] of shapes) {
  for (const [jsName, field] of Object.entries(types[name]!.fields!)) {
    const fieldName = field.protoName ?? jsName; // as client.proto and docs/protocol.md spell it
    if (field.type === 'uint32') shape.uint32.set(field.id, fieldName);
    const nested = shapes.get(field.type);
    if (nested) shape.nested.set(field.id, { name: fieldName, shape: nested });
  }
}
const CLIENT_FRAME = shapes.get('ClientFrame')!;

let at = 0;

/** A varint's value (exact up to 2^53, beyond it only known to be large). */
function varint(bytes: Uint8Array, end: number): number {
  let value = 0;
  for (let shift = 0; shift < 70 && at < end; shift += 7) {
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
  return Number.NaN;
}

/**
 * Walks one message's fields in [at, end) and names the first uint32 field
 * wider than 32 bits, or returns null. Unknown fields and groups are stepped
 * over (shape undefined); the bytes already decoded, so their lengths hold.
 */
function wideField(bytes: Uint8Array, end: number, shape: Shape | undefined, path: string): string | null {
  while (at < end) {
    const tag = varint(bytes, end);
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0: {
        const value = varint(bytes, end);
        const name = shape?.uint32.get(field);
        if (name !== undefined && !(value <= 0xffffffff)) return `${path}${name} is ${value}, wider than 32 bits (a uint32)`;
        break;
      }
      case 1: at += 8; break;
      case 5: at += 4; break;
      case 2: {
        const length = varint(bytes, end);
        const stop = at + length;
        const nested = shape?.nested.get(field);
        const packed = shape?.uint32.get(field);
        if (nested) {
          const found = wideField(bytes, stop, nested.shape, `${path}${nested.name}.`);
          if (found) return found;
        } else if (packed !== undefined) {
          while (at < stop) {
            const value = varint(bytes, stop);
            if (!(value <= 0xffffffff)) return `${path}${packed} holds ${value}, wider than 32 bits (a uint32)`;
          }
        }
        at = stop;
        break;
      }
      case 3: {
        const found = wideField(bytes, end, undefined, path);
        if (found) return found;
        break;
      }
      default: // 4, the end of a group this walk stepped into
        return null;
    }
  }
  return null;
}

/** Why a decoded ClientFrame breaks the contract, or null if it does not. */
export function clientFrameViolation(bytes: Uint8Array, frame: Record<string, unknown>): string | null {
  let bodies = 0;
  for (const name of CLIENT_FRAME_BODIES) if (frame[name] != null) bodies++;
  if (bodies > 1) return `a ClientFrame holds exactly one body; this one holds ${CLIENT_FRAME_BODIES.filter((name) => frame[name] != null).join(' and ')}`;
  at = 0;
  return wideField(bytes, bytes.length, CLIENT_FRAME, '');
}
