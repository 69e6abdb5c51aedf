// RocksDB (rocksdb-native) behind the few operations the replicated roles
// need: point reads, atomic batches, and bounded range scans.
import RocksDB from 'rocksdb-native';

export interface KvWrite {
  key: Uint8Array;
  value?: Uint8Array;
  delete?: boolean;
}

export class KvStore {
  private constructor(private readonly db: RocksDB) {}

  static async open(path: string): Promise<KvStore> {
    const db = new RocksDB(path);
    await db.ready();
    return new KvStore(db);
  }

  async get(key: Uint8Array): Promise<Buffer | null> {
    return (await this.db.get(Buffer.from(key))) ?? null;
  }

  /** Applies every write or none. */
  async write(writes: readonly KvWrite[]): Promise<void> {
    const batch = this.db.write();
    for (const w of writes) {
      if (w.delete) batch.delete(Buffer.from(w.key));
      else batch.put(Buffer.from(w.key), Buffer.from(w.value ?? new Uint8Array()));
    }
    await batch.flush();
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

  async close(): Promise<void> {
    await this.db.close();
  }
}
