// The store under the replicated logs, on a real RocksDB: what it keeps in
// memory is bounded by its memtable, which is flushed to a table file once
// 16 MiB were written (RocksDB's own default, 64 MiB twice over, made every
// replica's resident memory grow by up to 128 MB under load).
import { afterAll, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvStore } from '../../workloads/store/kv-store.js';
import { eventually } from '../support/cluster.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

test('40 MiB written go to disk as table files: the memtable holds no more than 16 MiB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-store-'));
  dirs.push(dir);
  const kv = await KvStore.open(dir);
  try {
    const value = randomBytes(1024 * 1024);
    for (let i = 0; i < 40; i++) await kv.write([{ key: Buffer.from(`k${String(i).padStart(3, '0')}`), value }]);
    await eventually(() => readdirSync(dir).some((f) => f.endsWith('.sst')), 'a table file flushed from the memtable', 30_000);
    expect((await kv.get(Buffer.from('k000')))?.equals(value)).toBe(true);
  } finally {
    await kv.close();
  }
});
