// Snowflake ids: unique, increasing, decodable, one worker id space per process.
import { describe, expect, test } from '@jest/globals';
import {
  decodeSnowflake, GROUPCHAT_EPOCH_MS, MAX_ORDINAL, MAX_WORKER_ID, Snowflake, workerIdFor,
} from '../../workloads/ids/snowflake.js';
import { Long, messageIdKey } from '../../workloads/protocol/index.js';

const T0 = GROUPCHAT_EPOCH_MS + 123_456_789;
const ROLES = ['client', 'proxy', 'broker', 'router', 'gateway', 'pi', 'xiu', 'relay'];

/** A clock the test moves by hand. */
function clock(start = T0) {
  const c = { ms: start, now: () => c.ms };
  return c;
}

function expectIncreasing(ids: Long[]): void {
  for (let i = 1; i < ids.length; i++) {
    if (!ids[i]!.greaterThan(ids[i - 1]!)) {
      throw new Error(`id ${i} (${ids[i]!.toString()}) is not above id ${i - 1} (${ids[i - 1]!.toString()})`);
    }
  }
}

describe('Snowflake', () => {
  test('ids are unique and strictly increasing, even past 4096 in one millisecond', () => {
    const c = clock();
    const ids = new Snowflake(5, c.now);
    const out: Long[] = [];
    for (let i = 0; i < 10_000; i++) out.push(ids.next()); // the clock never moves
    expect(new Set(out.map(messageIdKey)).size).toBe(out.length);
    expectIncreasing(out);
    // 4096 per millisecond: the generator borrowed the next milliseconds.
    expect(decodeSnowflake(out.at(-1)!).timestampMs).toBe(T0 + Math.floor(9_999 / 4096));
  });

  test('a clock that steps back never reuses or lowers an id', () => {
    const c = clock();
    const ids = new Snowflake(9, c.now);
    const out: Long[] = [];
    for (let step = 0; step < 200; step++) {
      // forward, forward, back by 5 ms, ...
      c.ms += step % 3 === 2 ? -5 : 1;
      for (let i = 0; i < 10; i++) out.push(ids.next());
    }
    expect(new Set(out.map(messageIdKey)).size).toBe(out.length);
    expectIncreasing(out);
  });

  test('a large backward step (NTP correction) keeps ids increasing', () => {
    const c = clock();
    const ids = new Snowflake(1, c.now);
    const before = ids.next();
    c.ms -= 60_000;
    const after = [ids.next(), ids.next()];
    expectIncreasing([before, ...after]);
    c.ms += 120_000;
    const later = ids.next();
    expect(decodeSnowflake(later).timestampMs).toBe(c.ms);
  });

  test('decode gives back the time, worker and sequence', () => {
    const c = clock();
    for (const workerId of [0, 1, 513, MAX_WORKER_ID]) {
      const ids = new Snowflake(workerId, c.now);
      for (let seq = 0; seq < 3; seq++) {
        expect(decodeSnowflake(ids.next())).toEqual({ timestampMs: c.ms, workerId, sequence: seq });
      }
      c.ms += 17;
      expect(decodeSnowflake(ids.next())).toEqual({ timestampMs: c.ms, workerId, sequence: 0 });
    }
  });

  test('decode round-trips at the far end of the 41-bit time range', () => {
    const far = GROUPCHAT_EPOCH_MS + 2 ** 41 - 1;
    const id = new Snowflake(MAX_WORKER_ID, () => far).next();
    expect(decodeSnowflake(id)).toEqual({ timestampMs: far, workerId: MAX_WORKER_ID, sequence: 0 });
    expect(id.high >>> 31).toBe(0); // the sign bit stays clear: ids fit a signed int64 too
  });

  test('decode accepts a signed Long of the same bits', () => {
    const id = new Snowflake(77, () => T0).next();
    const signed = Long.fromBits(id.low, id.high, false);
    expect(decodeSnowflake(signed)).toEqual(decodeSnowflake(id));
  });

  test('two workers never produce the same id, even in the same millisecond', () => {
    const c = clock();
    const a = new Snowflake(workerIdFor('gateway', 0), c.now);
    const b = new Snowflake(workerIdFor('gateway', 1), c.now);
    const keys = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      keys.add(messageIdKey(a.next()));
      keys.add(messageIdKey(b.next()));
    }
    expect(keys.size).toBe(10_000);
  });

  test('worker ids out of 0..1023 are refused', () => {
    for (const bad of [-1, MAX_WORKER_ID + 1, 1.5, Number.NaN]) {
      expect(() => new Snowflake(bad)).toThrow(/worker id .* out of range/);
    }
  });
});

describe('workerIdFor', () => {
  test('every (role, ordinal) pair has its own worker id inside 0..1023', () => {
    const seen = new Map<number, string>();
    for (const role of ROLES) {
      for (let ordinal = 0; ordinal <= MAX_ORDINAL; ordinal++) {
        const id = workerIdFor(role, ordinal);
        expect(id).toBeGreaterThanOrEqual(0);
        expect(id).toBeLessThanOrEqual(MAX_WORKER_ID);
        expect(seen.get(id)).toBeUndefined();
        seen.set(id, `${role}/${ordinal}`);
      }
    }
    expect(seen.size).toBe(ROLES.length * (MAX_ORDINAL + 1));
  });

  test('an unknown role or an ordinal out of range is refused', () => {
    expect(() => workerIdFor('operator', 0)).toThrow(/no worker id space for role "operator"/);
    for (const bad of [-1, MAX_ORDINAL + 1, 2.5]) {
      expect(() => workerIdFor('broker', bad)).toThrow(/ordinal .* out of range 0..127/);
    }
  });
});
