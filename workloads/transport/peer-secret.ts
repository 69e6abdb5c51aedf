// The secret every peer link of a cluster presents in its Hello. Read once
// from the file GROUPCHAT_PEER_SECRET_FILE names (a mounted Secret); with no
// file, links are not authenticated (a local cluster on loopback).
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

let cached: Buffer | null | undefined;

export function peerSecret(): Buffer | null {
  if (cached === undefined) {
    const file = process.env.GROUPCHAT_PEER_SECRET_FILE;
    cached = file ? Buffer.from(readFileSync(file, 'utf8').trim()) : null;
    if (cached && cached.length < 16) throw new Error(`peer secret in ${file} is shorter than 16 bytes`);
  }
  return cached;
}

export function secretMatches(presented: Uint8Array): boolean {
  const expected = peerSecret();
  if (!expected) return true;
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
