// The e2e's room ledger (test/e2e/chat-traffic.ts) judged on made-up
// deliveries: each violation it exists to catch is caught, the copies the
// SDK's duplicate filter dropped included.
import { expect, test } from '@jest/globals';
import { auditRooms, type RoomMemberView } from '../e2e/chat-traffic.js';

const acked = new Map([[1, [1, 2, 3]], [2, [1, 2]]]);
const member = (received: Record<number, number[]>, duplicatesDropped = 0): RoomMemberView => ({
  rooms: [1, 2],
  received: new Map(Object.entries(received).map(([room, ns]) => [Number(room), ns])),
  seqs: new Map(Object.entries(received).map(([room, ns]) => [Number(room), ns])),
  duplicatesDropped,
});

test('a clean ledger has no violation', () => {
  expect(auditRooms(acked, [member({ 1: [1, 2, 3], 2: [1, 2] })])).toEqual({ lost: 0, duplicated: 0, reordered: 0, seqBreaks: 0, sdkDeduplicated: 0 });
});

test('lost, kept twice, dropped twice by the SDK, out of order: each is counted', () => {
  expect(auditRooms(acked, [member({ 1: [1, 3], 2: [1, 2] })])).toMatchObject({ lost: 1, seqBreaks: 1 });
  expect(auditRooms(acked, [member({ 1: [1, 2, 2, 3], 2: [1, 2] })])).toMatchObject({ duplicated: 1 });
  // The app saw each message once, but the gateway sent two copies: still a duplicate.
  expect(auditRooms(acked, [member({ 1: [1, 2, 3], 2: [1, 2] }, 2)])).toMatchObject({ duplicated: 2, sdkDeduplicated: 2 });
  expect(auditRooms(acked, [member({ 1: [1, 3, 2], 2: [1, 2] })])).toMatchObject({ reordered: 1, lost: 0 });
});
