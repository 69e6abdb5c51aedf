// RocksDB (rocksdb-native) behind the few operations the replicated roles
// need: point reads, atomic batches, and bounded range scans. Writes are
// group-committed: whatever is queued while one batch is being written goes
// out together in the next, in order, so a busy store pays one RocksDB write
// per batch instead of one per log entry.
import RocksDB from 'rocksdb-native';

export interface KvWrite {
  key: Uint8Array;
  value?: Uint8Array;
  delete?: boolean;
  /** With delete: removes every key in [key, rangeEnd) in the same atomic batch. */
  rangeEnd?: Uint8Array;
}

const EMPTY = Buffer.alloc(0);

/** The bytes as a Buffer without copying them (the writes are not changed after they are queued). */
function view(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * RocksDB's memtable, of which it keeps two: written data stays in memory
 * until a memtable is full and flushed. RocksDB's default of 64 MiB made
 * each replica's resident memory grow by up to 128 MB under load; what is
 * written here is read back soon or never, so a smaller memtable costs
 * only more frequent (smaller) flushes.
 */
const MEMTABLE_BYTES = 16 * 1024 * 1024;

interface Waiting { resolve: () => void; reject: (err: Error) => void }

export class KvStore {
  private queued: KvWrite[] = [];
  private waiting: Waiting[] = [];
  private writing = false;
  /** A failed batch fails every later write too: none may land after a lost one. */
  private failed: Error | null = null;

  private constructor(private readonly db: RocksDB) {}

  static async open(path: string): Promise<KvStore> {
    const db = new RocksDB(path, { writeBufferSize: MEMTABLE_BYTES });
    await db.ready();
    return new KvStore(db);
  }

  async get(key: Uint8Array): Promise<Buffer | null> {
    return (await this.db.get(Buffer.from(key))) ?? null;
  }

  /** Applies every write or none; resolves once they, and every write queued before them, are written. */
  write(writes: readonly KvWrite[]): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      for (const w of writes) this.queued.push(w);
      this.waiting.push({ resolve, reject });
      if (!this.writing) void this.writeQueued();
    });
  }

  private async writeQueued(): Promise<void> {
    this.writing = true;
    // A write of nothing still waits for the writes queued before it.
    while ((this.queued.length > 0 || this.waiting.length > 0) && !this.failed) {
      const writes = this.queued;
      const waiting = this.waiting;
      this.queued = [];
      this.waiting = [];
      if (writes.length === 0) {
        for (const w of waiting) w.resolve();
        continue;
      }
      try {
        // autoDestroy: a batch left undestroyed keeps the database open forever (close() waits for it).
        const batch = this.db.write({ autoDestroy: true });
        // try*: no promise per operation (the batch's flush is the one that matters).
        for (const w of writes) {
          if (w.delete && w.rangeEnd) batch.tryDeleteRange(view(w.key), view(w.rangeEnd));
          else if (w.delete) batch.tryDelete(view(w.key));
          else batch.tryPut(view(w.key), view(w.value ?? EMPTY));
        }
        await batch.flush();
        for (const w of waiting) w.resolve();
      } catch (err) {
        this.failed = err instanceof Error ? err : new Error(String(err));
        for (const w of [...waiting, ...this.waiting]) w.reject(this.failed);
        this.queued = [];
        this.waiting = [];
      }
    }
    this.writing = false;
  }

  /** Keys in [gte, lt), in order, at most limit of them. */
  async range(gte: Uint8Array, lt: Uint8Array, limit: number, reverse = false): Promise<Array<{ key: Buffer; value: Buffer }>> {
    const out: Array<{ key: Buffer; value: Buffer }> = [];
    for await (const entry of this.db.iterator({ gte: Buffer.from(gte), lt: Buffer.from(lt), limit, reverse })) {
      out.push(entry as { key: Buffer; value: Buffer });
    }
    return out;
  }

  /** Removes every key in [gte, lt). */
  async deleteRange(gte: Uint8Array, lt: Uint8Array): Promise<void> {
    await this.db.deleteRange(Buffer.from(gte), Buffer.from(lt));
  }

  /** The name of RocksDB's current write-ahead log file in the database directory (to fsync it). */
  async currentWalFile(): Promise<string> {
    const wal = await this.db.currentWalFile();
    return wal.path.replace(/^\/+/, '');
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
