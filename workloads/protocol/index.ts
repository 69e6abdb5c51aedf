// The wire types, generated from client.proto and peer.proto (the single
// source of truth), plus the few helpers every role needs around them.
import type LongClass from 'long';
import protobuf from 'protobufjs/minimal.js';
import { groupchat as clientRoot } from './generated/client.js';
import { groupchat as peerRoot } from './generated/peer.js';
import { clientFrameViolation } from './client-frame-rules.js';

export const client = clientRoot.client;
export const peer = peerRoot.peer;
// The very class protobufjs decodes 64-bit fields into, typed by the long package.
export type Long = LongClass;
export const Long = protobuf.util.Long as unknown as typeof LongClass;
export const Writer = protobuf.Writer;
export const Reader = protobuf.Reader;

/**
 * What decode() really returns for a message that is present: every scalar
 * and repeated field set (proto3 defaults), 64-bit fields as Long, nested
 * messages decoded likewise. The generated types mark all of them optional.
 */
type DecodedField<F> = [F] extends [number | LongClass]
  ? ([LongClass] extends [F] ? LongClass : number)
  : Decoded<F>;
export type Decoded<T> = T extends Uint8Array | string | boolean ? T
  : T extends ReadonlyArray<infer E> ? Array<DecodedField<NonNullable<E>>>
  : { [K in keyof T as K extends '$unknowns' ? never : K]-?: DecodedField<NonNullable<T[K]>> };

/** A message with a oneof named D, as a union narrowed by `switch (message[D])`. */
type Oneof<F, D extends keyof F> =
  | { [K in NonNullable<F[D]> & string]: { [Q in D]: K } & { [P in K]: Decoded<NonNullable<F[P & keyof F]>> } }[NonNullable<F[D]> & string]
  | { [Q in D]: undefined };
type OneofFrame<F extends { body?: string }> = Oneof<F, 'body'>;

type MessageOf<C> = C extends { encode(m: infer P, ...rest: never[]): unknown } ? Decoded<P> : never;
const peerTypes = peerRoot.peer;
const clientTypes = clientRoot.client;

export type ClientFrame = OneofFrame<ReturnType<typeof clientTypes.ClientFrame.decode>> & { requestId: number };
export type PeerFrame = OneofFrame<ReturnType<typeof peerTypes.PeerFrame.decode>>;
export type PeerFrameInit = Parameters<typeof peerTypes.PeerFrame.encode>[0];
export type Publish = MessageOf<typeof peerTypes.Publish>;
export type RoomDelivery = MessageOf<typeof peerTypes.RoomDelivery>;
export type MembershipUpdate = MessageOf<typeof peerTypes.MembershipUpdate>;
export type RoomCount = MessageOf<typeof peerTypes.RoomCount>;
export type Delivery = MessageOf<typeof clientTypes.Delivery>;
type StoreRequestDecoded = ReturnType<typeof peerTypes.StoreRequest.decode>;
export type StoreRequest = Oneof<StoreRequestDecoded, 'op'> & { correlation: number };

/** Decodes a PeerFrame; the result is narrowed by its body (and a StoreRequest's by its op). */
export function decodePeerFrame(bytes: Uint8Array): PeerFrame {
  return peerTypes.PeerFrame.decode(bytes) as unknown as PeerFrame;
}

/** A StoreRequest inside a decoded PeerFrame, narrowed by its op. */
export function storeRequestOf(frame: Extract<PeerFrame, { body: 'storeRequest' }>): StoreRequest {
  return frame.storeRequest as unknown as StoreRequest;
}

/** Decodes a ClientFrame from a user; throws on bytes that are not one, or break a rule of client-frame-rules.ts. */
export function decodeClientFrame(bytes: Uint8Array): ClientFrame {
  const frame = clientTypes.ClientFrame.decode(bytes);
  const violation = clientFrameViolation(bytes, frame as unknown as Record<string, unknown>);
  if (violation) throw new Error(violation);
  return frame as unknown as ClientFrame;
}

/** Bumped on any incompatible change to peer.proto. */
export const PEER_PROTOCOL_VERSION = 1;

/**
 * Version of the user protocol (client.proto, docs/protocol.md): bumped on any
 * incompatible change. The client package's PROTOCOL_VERSION states the one
 * it speaks; test/client/package.test.ts holds the two equal.
 */
export const CLIENT_PROTOCOL_VERSION = 1;

/** Message ids are 64-bit; JS sees them as Long. This key is exact, hashable and cheap. */
export function messageIdKey(id: number | Long): string {
  const long = typeof id === 'number' ? Long.fromNumber(id, true) : id;
  return `${long.high >>> 0}.${long.low >>> 0}`;
}

export function isZeroId(id: number | Long | null | undefined): boolean {
  if (id == null) return true;
  return typeof id === 'number' ? id === 0 : id.low === 0 && id.high === 0;
}

/** Every virtual room of a split room; an unsplit room delivers with all of them. */
export const VROOM_COUNT = 64;
export const ALL_VROOMS: Long = Long.fromBits(0xffffffff, 0xffffffff, true);

export function vroomOf(userId: number): number {
  return userId % VROOM_COUNT;
}

export function maskHas(mask: Long, vroom: number): boolean {
  return vroom < 32 ? ((mask.low >>> vroom) & 1) === 1 : ((mask.high >>> (vroom - 32)) & 1) === 1;
}

export function maskWith(mask: Long, vroom: number): Long {
  return vroom < 32
    ? Long.fromBits((mask.low | (1 << vroom)) >>> 0, mask.high, true)
    : Long.fromBits(mask.low, (mask.high | (1 << (vroom - 32))) >>> 0, true);
}

export function maskWithout(mask: Long, other: Long): Long {
  return Long.fromBits((mask.low & ~other.low) >>> 0, (mask.high & ~other.high) >>> 0, true);
}

export function maskIsEmpty(mask: Long): boolean {
  return mask.low === 0 && mask.high === 0;
}

export function toLong(value: number | Long | null | undefined): Long {
  if (value == null) return Long.UZERO;
  return typeof value === 'number' ? Long.fromNumber(value, true) : Long.fromBits(value.low, value.high, true);
}

export function toNumber(value: number | Long | null | undefined): number {
  if (value == null) return 0;
  return typeof value === 'number' ? value : Long.fromBits(value.low, value.high, true).toNumber();
}
