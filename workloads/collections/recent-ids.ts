// The duplicate filters of the hot path (broker: publishes, gateway:
// deliveries) remember the most recent messages. A string key and an LRU
// entry per message cost more than the rest of the broker's work per publish;
// this table keys by four 32-bit words (room, sender, id high, id low) in
// typed arrays (linear probing, backward-shift deletion) and forgets the
// oldest key first, so a lookup allocates nothing. The arrays start small
// and double as keys arrive, up to the capacity: a broker that follows keeps
// no duplicate table, and one that leads a quiet partition needs little, so
// neither carries the full table's 16 MB (200,000 keys) from its start.
// The room is part of the key: a message id is unique per sender and room
// (docs/protocol.md §5), so an id reused in another room is another message.

const WORDS = 4;

/** Entries a table holds before it first grows. */
const INITIAL_ENTRIES = 1024;

export class RecentIds<V> {
  private slotMask = 0;
  /** Four words per slot: room, sender, id high, id low. */
  private keys = new Uint32Array(0);
  private used = new Uint8Array(0);
  private values: Array<V | undefined> = [];
  /** Insertion order, four words per entry, a ring of `room` entries: the oldest is evicted first. */
  private order = new Uint32Array(0);
  /** Entries the arrays hold now: grows to capacity. */
  private room = 0;
  private oldest = 0;
  private count = 0;

  constructor(readonly capacity: number, initial = INITIAL_ENTRIES) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.allocate(Math.max(1, Math.min(capacity, initial)));
  }

  /** Entries the table has room for before it grows again (at most capacity). */
  get allocated(): number {
    return this.room;
  }

  get size(): number {
    return this.count;
  }

  get(room: number, sender: number, high: number, low: number): V | undefined {
    const slot = this.find(room >>> 0, sender >>> 0, high >>> 0, low >>> 0);
    return slot >= 0 ? this.values[slot] : undefined;
  }

  set(room: number, sender: number, high: number, low: number, value: V): void {
    const r = room >>> 0, a = sender >>> 0, b = high >>> 0, c = low >>> 0;
    let slot = this.find(r, a, b, c);
    if (slot >= 0) {
      this.values[slot] = value;
      return;
    }
    if (this.count === this.room) {
      if (this.room < this.capacity) this.allocate(Math.min(this.capacity, this.room * 2));
      else this.evictOldest();
      slot = this.find(r, a, b, c);
    }
    this.insert(~slot, r, a, b, c, value);
  }

  private insert(free: number, r: number, a: number, b: number, c: number, value: V): void {
    this.write(this.keys, free * WORDS, r, a, b, c);
    this.used[free] = 1;
    this.values[free] = value;
    this.write(this.order, ((this.oldest + this.count) % this.room) * WORDS, r, a, b, c);
    this.count++;
  }

  /** Arrays for `entries` entries (twice as many slots, a power of two), with what is held moved over oldest first. */
  private allocate(entries: number): void {
    const { keys, used, values, order, room, oldest, count } = this;
    let slots = 2;
    while (slots < entries * 2) slots *= 2;
    this.slotMask = slots - 1;
    this.keys = new Uint32Array(slots * WORDS);
    this.used = new Uint8Array(slots);
    this.values = new Array<V | undefined>(slots).fill(undefined);
    this.order = new Uint32Array(entries * WORDS);
    this.room = entries;
    this.oldest = 0;
    this.count = 0;
    const oldMask = used.length - 1;
    for (let i = 0; i < count; i++) {
      const at = ((oldest + i) % room) * WORDS;
      const r = order[at]!, a = order[at + 1]!, b = order[at + 2]!, c = order[at + 3]!;
      // Its value is in the old table's slot for the key (probe it there with the old mask).
      let slot = this.homeIn(oldMask, r, a, b, c);
      while (!(keys[slot * WORDS] === r && keys[slot * WORDS + 1] === a && keys[slot * WORDS + 2] === b && keys[slot * WORDS + 3] === c)) slot = (slot + 1) & oldMask;
      this.insert(~this.find(r, a, b, c), r, a, b, c, values[slot] as V);
    }
  }

  private write(into: Uint32Array, at: number, r: number, a: number, b: number, c: number): void {
    into[at] = r;
    into[at + 1] = a;
    into[at + 2] = b;
    into[at + 3] = c;
  }

  private home(r: number, a: number, b: number, c: number): number {
    return this.homeIn(this.slotMask, r, a, b, c);
  }

  private homeIn(mask: number, r: number, a: number, b: number, c: number): number {
    let h = Math.imul(c ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(a, 0x85ebca6b) ^ Math.imul(r, 0x27d4eb2f), 0xc2b2ae35);
    h ^= h >>> 15;
    return h & mask;
  }

  /** The key's slot, or the bitwise complement of the free slot where it would go. */
  private find(r: number, a: number, b: number, c: number): number {
    const keys = this.keys;
    let slot = this.home(r, a, b, c);
    while (this.used[slot] === 1) {
      const k = slot * WORDS;
      if (keys[k + 3] === c && keys[k + 2] === b && keys[k + 1] === a && keys[k] === r) return slot;
      slot = (slot + 1) & this.slotMask;
    }
    return ~slot;
  }

  private evictOldest(): void {
    const at = this.oldest * WORDS;
    const o = this.order;
    const slot = this.find(o[at]!, o[at + 1]!, o[at + 2]!, o[at + 3]!);
    this.oldest = (this.oldest + 1) % this.room;
    this.count--;
    if (slot >= 0) this.remove(slot);
  }

  /** Backward-shift deletion: later entries of the probe run move up, so no tombstones. */
  private remove(slot: number): void {
    const keys = this.keys;
    let hole = slot;
    let next = slot;
    for (;;) {
      next = (next + 1) & this.slotMask;
      if (this.used[next] !== 1) break;
      const k = next * WORDS;
      const home = this.home(keys[k]!, keys[k + 1]!, keys[k + 2]!, keys[k + 3]!);
      // Move the entry into the hole unless its home lies cyclically in (hole, next].
      const stays = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (stays) continue;
      this.write(keys, hole * WORDS, keys[k]!, keys[k + 1]!, keys[k + 2]!, keys[k + 3]!);
      this.values[hole] = this.values[next];
      hole = next;
    }
    this.used[hole] = 0;
    this.values[hole] = undefined;
  }
}
