// The room log's state machine against a model, on a real RocksDB: random
// sequences of appends (batches over several rooms), history pages forward
// and backward, heads, per-room retention and compaction of the log prefix.
// Every read must return exactly what the model says is stored, and say
// "incomplete" exactly when retention removed part of what was asked.
import { afterAll, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBatch, encodeBatch, RoomLog } from '../../workloads/broker/room-log.js';
import { ALL_VROOMS, Long, peer, toNumber } from '../../workloads/protocol/index.js';
import type { Entry } from '../../workloads/replication/raft.js';
import { KvStore } from '../../workloads/store/kv-store.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const ROOMS = [1, 2, 3];
type Op =
  | { kind: 'append'; rooms: number[] }
  | { kind: 'forward'; room: number; after: number; limit: number }
  | { kind: 'backward'; room: number; before: number; limit: number }
  | { kind: 'compact'; keepBytes: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), rooms: fc.array(fc.constantFrom(...ROOMS), { minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('forward' as const), room: fc.constantFrom(...ROOMS), after: fc.nat(40), limit: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('backward' as const), room: fc.constantFrom(...ROOMS), before: fc.integer({ min: 1, max: 45 }), limit: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), keepBytes: fc.integer({ min: 0, max: 3000 }) }) },
);

test('history pages and heads return exactly what is stored, against a model', async () => {
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), fc.integer({ min: 1, max: 15 }), async (ops, perRoom) => {
    const dir = mkdtempSync(join(tmpdir(), 'room-log-'));
    dirs.push(dir);
    const kv = await KvStore.open(dir);
    const retention = { messagesPerRoom: perRoom, maxAgeSeconds: 0, bytesPerPartition: Number.MAX_SAFE_INTEGER };
    const log = new RoomLog(kv, retention);
    const entries = new Map<number, Entry>();
    // The model: per room, every message ever appended (seq → id), and the oldest seq still kept.
    const stored = new Map<number, string[]>(ROOMS.map((r) => [r, []]));
    const floor = new Map<number, number>(ROOMS.map((r) => [r, 1]));
    let index = 0;
    let id = 0;
    try {
      for (const o of ops) {
        if (o.kind === 'append') {
          const encoded = o.rooms.map((roomId) => {
            const seq = stored.get(roomId)!.push(`m${++id}`);
            floor.set(roomId, Math.max(floor.get(roomId)!, seq - perRoom + 1));
            return peer.RoomDelivery.encode({
              messageId: Long.fromNumber(id, true), roomId, senderId: 7, roomSeq: Long.fromNumber(seq, true), sequencerId: 1,
              payload: Buffer.from(`m${id}`), sentAtMs: Long.UZERO, vroomMask: ALL_VROOMS, priority: 0,
            }).finish();
          });
          const entry = { index: ++index, term: 1, data: encodeBatch(encoded, 0) };
          entries.set(entry.index, entry);
          await kv.write(log.apply([entry]));
        } else if (o.kind === 'compact') {
          log.setRetention({ ...retention, bytesPerPartition: o.keepBytes });
          const { index: upTo, writes } = log.compactionPoint(Date.now(), (i) => entries.get(i));
          await kv.write(writes);
          for (const [i, e] of entries) {
            if (i > upTo) continue;
            entries.delete(i);
            for (const d of peer.RoomLogBatch.decode(e.data).messages) {
              floor.set(d.roomId!, Math.max(floor.get(d.roomId!)!, toNumber(d.roomSeq!) + 1));
            }
          }
          log.setRetention(retention);
        } else {
          const all = stored.get(o.room)!;
          const head = all.length;
          const count = Math.min(o.limit || 1000, 1000);
          const [from, to] = o.kind === 'forward'
            ? [o.after + 1, Math.min(head, o.after + count)]
            : [Math.max(1, Math.min(o.before - 1, head) - count + 1), Math.min(o.before - 1, head)];
          const page = await log.page(o.room, o.kind === 'forward' ? o.after : 0, o.kind === 'backward' ? o.before : 0, o.limit,
            async (i) => entries.get(i) ?? null);
          const kept = Math.max(from, floor.get(o.room)!);
          const expected = to < kept ? [] : all.slice(kept - 1, to);
          expect(page.deliveries.map((d) => Buffer.from(d.payload).toString())).toEqual(expected);
          expect(page.deliveries.map((d) => toNumber(d.roomSeq))).toEqual(expected.map((_, i) => kept + i));
          expect(page.complete).toBe(from >= floor.get(o.room)! || to < from);
          expect(page.head).toBe(head);
        }
        for (const roomId of ROOMS) {
          expect(log.position(roomId)).toEqual({ head: stored.get(roomId)!.length, floor: floor.get(roomId)!, base: 0 });
        }
      }
      // What is on disk survives a restart of the state machine.
      const reopened = new RoomLog(kv, retention);
      await reopened.load();
      for (const roomId of ROOMS) {
        if (stored.get(roomId)!.length === 0) continue;
        expect(reopened.position(roomId)).toEqual(log.position(roomId));
      }
    } finally {
      await kv.close();
    }
  }), { numRuns: 150 });
});

test('decoded entries are kept by the messages they hold: 4,096 at most, however many entries that is', () => {
  const entryOf = (first: number, count: number) => encodeBatch(Array.from({ length: count }, (_, i) => peer.RoomDelivery.encode({
    messageId: Long.fromNumber(first + i, true), roomId: 1, senderId: 7, roomSeq: Long.fromNumber(first + i, true), sequencerId: 1,
    payload: Buffer.from('m'), sentAtMs: Long.UZERO, vroomMask: ALL_VROOMS, priority: 0,
  }).finish()), 0);
  // Nine full entries of 512 messages: the first no longer fits beside the newest eight.
  const full = Array.from({ length: 9 }, (_, e) => entryOf(e * 512 + 1, 512));
  const decoded = full.map((data) => decodeBatch(data));
  const kept = (i: number) => decodeBatch(full[i]!) === decoded[i];
  expect(kept(8)).toBe(true); // the newest is kept: read again, it is not decoded again
  expect(kept(1)).toBe(true);
  expect(kept(0)).toBe(false); // 4,608 messages: the oldest left
  // An entry larger than the bound is still kept, alone.
  const huge = entryOf(10_000, 5000);
  expect(decodeBatch(huge) === decodeBatch(huge)).toBe(true);
});
