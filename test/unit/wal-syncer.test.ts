// What makes an acknowledged write durable: the fdatasync of RocksDB's
// write-ahead log, on a real RocksDB. RocksDB starts a new log file when a
// memtable fills and does not sync the one it closes; when that happens
// twice between two syncs, the file in between must be synced too, or
// writes acknowledged from it could be lost with the power.
import { afterAll, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WalSyncer } from '../../workloads/replication/replicated-log.js';
import { KvStore } from '../../workloads/store/kv-store.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

test('two log file rotations between syncs: the file between them is synced as well', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wal-syncer-'));
  dirs.push(dir);
  const kv = await KvStore.open(dir);
  const synced: string[] = [];
  const syncer = new WalSyncer(kv, dir, 0, (err) => { throw err; }, async (path) => { synced.push(path); });
  try {
    const put = (key: string, value: Buffer) => kv.write([{ key: Buffer.from(key), value }]);
    const full = randomBytes(17 * 1024 * 1024); // past the 16 MiB memtable: the next write starts a new log file
    await put('a', Buffer.from('a'));
    await syncer.sync();
    const first = await kv.currentWalFile();
    await put('b', full);
    await put('c', Buffer.from('c')); // acknowledged from the second file, were it synced now
    const second = await kv.currentWalFile();
    await put('d', full);
    await put('e', Buffer.from('e'));
    const third = await kv.currentWalFile();
    expect(new Set([first, second, third]).size).toBe(3);
    await syncer.sync();
    // A file RocksDB already removed was flushed into a table file first, which RocksDB syncs.
    expect({ second, synced: synced.includes(join(dir, second)) || !existsSync(join(dir, second)) }).toEqual({ second, synced: true });
  } finally {
    await syncer.close();
    await kv.close();
  }
});
