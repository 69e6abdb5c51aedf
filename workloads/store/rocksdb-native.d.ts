// rocksdb-native ships no types; these cover what kv-store.ts uses.
declare module 'rocksdb-native' {
  interface WriteBatch {
    /** The try* forms queue the operation without a promise of its own. */
    tryPut(key: Buffer, value: Buffer): void;
    tryDelete(key: Buffer): void;
    tryDeleteRange(start: Buffer, end: Buffer): void;
    flush(): Promise<void>;
  }
  interface IteratorRange {
    gte?: Buffer;
    lt?: Buffer;
    limit?: number;
    reverse?: boolean;
  }
  export default class RocksDB {
    constructor(path: string, options?: Record<string, unknown>);
    ready(): Promise<void>;
    get(key: Buffer): Promise<Buffer | null>;
    write(options?: { autoDestroy?: boolean }): WriteBatch;
    iterator(range: IteratorRange): AsyncIterable<{ key: Buffer; value: Buffer }>;
    deleteRange(start: Buffer, end: Buffer): Promise<void>;
    /** The write-ahead log file being written, its path relative to the database directory. */
    currentWalFile(): Promise<{ path: string }>;
    approximateSize(start: Buffer, end: Buffer): Promise<number>;
    close(): Promise<void>;
  }
}
