// The relay's inbox pump driven directly: an in-memory inbox (Pi's part) and
// payload table (Xiu's part) stand in for the stores, a recording link for a
// gateway, and the test runs the retries the pump schedules.
import { describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { InboxPump, type GatewayState, type InboxItem, type StoredPayload } from '../../workloads/relay/inbox-pump.js';
import { Long, toNumber } from '../../workloads/protocol/index.js';

function setup(cursor = 0) {
  const inbox: Array<{ position: Long; msgId: Long }> = [];
  const payloads = new Map<string, StoredPayload>();
  const pushes: Array<Array<[number, string]>> = [];
  const retries: Array<() => void> = [];
  let rangeReads = 0;
  const gateway: GatewayState = {
    seq: 1,
    users: new Set([7]),
    link: { closed: false, send: (frame) => { pushes.push(frame.inboxPush.items.map((i) => [toNumber(i.position), Buffer.from(i.payload!).toString()])); return true; } },
  };
  const pump = new InboxPump({
    gateways: new Map([['g1', gateway]]),
    pumpsFor: () => true,
    cursor: async () => cursor,
    range: async (_user, after, limit) => { rangeReads++; return inbox.filter((e) => toNumber(e.position) > after).slice(0, limit); },
    payloads: async (ids) => new Map(ids.flatMap((id) => (payloads.has(id.toString()) ? [[id.toString(), payloads.get(id.toString())!] as const] : []))),
    retryLater: (run) => retries.push(run),
    log: pino({ level: 'silent' }),
  });
  const store = (position: number, text: string | null) => {
    const msgId = Long.fromNumber(1000 + position, true);
    inbox.push({ position: Long.fromNumber(position, true), msgId });
    if (text !== null) payloads.set(msgId.toString(), { senderId: 3, payload: Buffer.from(text), sentAtMs: Long.UZERO });
    return msgId;
  };
  /** Lets the pump's awaits run to the end. */
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return { pump, store, payloads, pushes, retries, settle, reads: () => rangeReads };
}

describe('InboxPump', () => {
  test('an entry without a payload is not delivered; the position stays before it; a retry delivers it once it is there', async () => {
    const { pump, store, payloads, pushes, retries, settle } = setup();
    store(1, 'one');
    const missing = store(2, null);
    store(3, 'three');
    pump.pump(7);
    await settle();
    expect(pushes).toEqual([[[1, 'one']]]);
    expect(retries.length).toBe(1);
    retries.shift()!(); // still missing: nothing more, another retry
    await settle();
    expect(pushes.length).toBe(2); // position 1 again from the cursor (the gateway drops repeats), nothing made up
    expect(pushes[1]).toEqual([[1, 'one']]);
    payloads.set(missing.toString(), { senderId: 3, payload: Buffer.from('two'), sentAtMs: Long.UZERO });
    retries.shift()!();
    await settle();
    expect(pushes.at(-1)).toEqual([[1, 'one'], [2, 'two'], [3, 'three']]);
    expect(retries).toEqual([]);
  });

  test('starts after the cursor; a message stored at the next position goes straight to the gateway', async () => {
    const { pump, store, pushes, settle, reads } = setup(1);
    store(1, 'acked');
    store(2, 'two');
    pump.pump(7);
    await settle();
    expect(pushes).toEqual([[[2, 'two']]]);
    const before = reads();
    const msgId = store(3, 'three');
    const item: InboxItem = { position: 3, msgId, senderId: 3, payload: Buffer.from('three'), sentAtMs: 0 };
    pump.pump(7, { position: 3, item });
    expect(pushes.at(-1)).toEqual([[3, 'three']]);
    expect(reads()).toBe(before); // not read back from the stores
  });
});
