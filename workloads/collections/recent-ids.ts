// The duplicate filters of the hot path (broker: publishes, gateway:
// deliveries) remember the most recent message ids. A string key and an LRU
// entry per message cost more than the rest of the broker's work per publish;
// this table keys by the id's three 32-bit words in typed arrays (linear
// probing, backward-shift deletion) and forgets the oldest id first, so its
// memory is fixed and a lookup allocates nothing.

export class RecentIds<V> {
  private readonly slotMask: number;
  /** Three words per slot: sender, id high, id low. */
  private readonly keys: Uint32Array;
  private readonly used: Uint8Array;
  private readonly values: Array<V | undefined>;
  /** Insertion order, three words per entry: the oldest is evicted first. */
  private readonly order: Uint32Array;
  private oldest = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    let slots = 2;
    while (slots < capacity * 2) slots *= 2;
    this.slotMask = slots - 1;
    this.keys = new Uint32Array(slots * 3);
    this.used = new Uint8Array(slots);
    this.values = new Array<V | undefined>(slots).fill(undefined);
    this.order = new Uint32Array(capacity * 3);
  }

  get size(): number {
    return this.count;
  }

  get(sender: number, high: number, low: number): V | undefined {
    const slot = this.find(sender >>> 0, high >>> 0, low >>> 0);
    return slot >= 0 ? this.values[slot] : undefined;
  }

  set(sender: number, high: number, low: number, value: V): void {
    const a = sender >>> 0, b = high >>> 0, c = low >>> 0;
    let slot = this.find(a, b, c);
    if (slot >= 0) {
      this.values[slot] = value;
      return;
    }
    if (this.count === this.capacity) {
      this.evictOldest();
      slot = this.find(a, b, c);
    }
    const free = ~slot;
    this.keys[free * 3] = a;
    this.keys[free * 3 + 1] = b;
    this.keys[free * 3 + 2] = c;
    this.used[free] = 1;
    this.values[free] = value;
    const at = ((this.oldest + this.count) % this.capacity) * 3;
    this.order[at] = a;
    this.order[at + 1] = b;
    this.order[at + 2] = c;
    this.count++;
  }

  private home(a: number, b: number, c: number): number {
    let h = Math.imul(c ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(a, 0x85ebca6b), 0xc2b2ae35);
    h ^= h >>> 15;
    return h & this.slotMask;
  }

  /** The key's slot, or the bitwise complement of the free slot where it would go. */
  private find(a: number, b: number, c: number): number {
    const keys = this.keys;
    let slot = this.home(a, b, c);
    while (this.used[slot] === 1) {
      const k = slot * 3;
      if (keys[k + 2] === c && keys[k + 1] === b && keys[k] === a) return slot;
      slot = (slot + 1) & this.slotMask;
    }
    return ~slot;
  }

  private evictOldest(): void {
    const at = this.oldest * 3;
    const slot = this.find(this.order[at]!, this.order[at + 1]!, this.order[at + 2]!);
    this.oldest = (this.oldest + 1) % this.capacity;
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
      const k = next * 3;
      const home = this.home(keys[k]!, keys[k + 1]!, keys[k + 2]!);
      // Move the entry into the hole unless its home lies cyclically in (hole, next].
      const stays = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (stays) continue;
      keys[hole * 3] = keys[k]!;
      keys[hole * 3 + 1] = keys[k + 1]!;
      keys[hole * 3 + 2] = keys[k + 2]!;
      this.values[hole] = this.values[next];
      hole = next;
    }
    this.used[hole] = 0;
    this.values[hole] = undefined;
  }
}
