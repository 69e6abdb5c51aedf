// Pi: each user's inbox, an ordered list of MsgIDs at positions 1, 2, 3, …,
// and the user's acknowledged cursor. Durable and replicated; an append is
// idempotent on (user, MsgID), so a retried delivery takes one position.
import { peer, toNumber, type Long } from '../protocol/index.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { key, long64, readLong64, readU64, u32, u64 } from '../store/keys.js';
import { StoreUnavailable, type ReplicatedStore } from '../store/replicated-store.js';
import { startStoreRole, type StoreMachine, type StoreReplyInit, type StoreRequest } from '../store/store-role.js';

const MAX_RANGE = 1000;
const ENTRY = 'e';
const BY_MESSAGE = 'x';
const LAST = 'n';
const CURSOR = 'c';

class PiMachine implements StoreMachine {
  /** user → last position, for users written since this replica became leader. */
  private readonly last = new Map<number, number>();
  /** Appends of one user run one after another, so positions are consecutive. */
  private readonly chains = new Map<number, Promise<unknown>>();

  constructor(private readonly store: ReplicatedStore) {}

  async onLeader(): Promise<void> {
    this.last.clear();
  }

  async handle(request: StoreRequest): Promise<StoreReplyInit> {
    switch (request.op) {
      case 'piAppend': return this.serial(request.piAppend.userId, () => this.append(request.piAppend.userId, request.piAppend.msgId));
      case 'piRange': return this.range(request.piRange.userId, toNumber(request.piRange.afterPosition), request.piRange.limit);
      case 'piSetCursor': return this.serial(request.piSetCursor.userId, () => this.setCursor(request.piSetCursor.userId, toNumber(request.piSetCursor.position)));
      default: throw new StoreUnavailable(peer.StoreStatus.INVALID, `pi does not serve ${request.op}`);
    }
  }

  private serial<T>(userId: number, work: () => Promise<T>): Promise<T> {
    if (userId === 0) return Promise.reject(new StoreUnavailable(peer.StoreStatus.INVALID, 'user_id must not be 0'));
    const next = (this.chains.get(userId) ?? Promise.resolve()).then(work, work);
    this.chains.set(userId, next);
    // The failure is the caller's (it awaits next); this copy of it only cleans up.
    next.finally(() => { if (this.chains.get(userId) === next) this.chains.delete(userId); }).catch(() => undefined);
    return next;
  }

  private async lastPosition(userId: number): Promise<number> {
    let last = this.last.get(userId);
    if (last === undefined) {
      const raw = await this.store.get(key(LAST, u32(userId)));
      last = raw ? readU64(raw) : 0;
      this.last.set(userId, last);
    }
    return last;
  }

  private async cursor(userId: number): Promise<number> {
    const raw = await this.store.get(key(CURSOR, u32(userId)));
    return raw ? readU64(raw) : 0;
  }

  private async append(userId: number, msgId: Long): Promise<StoreReplyInit> {
    const existing = await this.store.get(key(BY_MESSAGE, u32(userId), long64(msgId)));
    // Data keys are written when an entry is applied, so one found is committed.
    if (existing) return { status: peer.StoreStatus.STORED, position: readU64(existing) };
    const position = (await this.lastPosition(userId)) + 1;
    this.last.set(userId, position);
    try {
      await this.store.propose([
        { key: key(ENTRY, u32(userId), u64(position)), value: long64(msgId) },
        { key: key(BY_MESSAGE, u32(userId), long64(msgId)), value: u64(position) },
        { key: key(LAST, u32(userId)), value: u64(position) },
      ]);
    } catch (err) {
      this.last.delete(userId); // re-read: the entry may or may not have been applied
      throw err;
    }
    return { status: peer.StoreStatus.STORED, position };
  }

  private async range(userId: number, after: number, limit: number): Promise<StoreReplyInit> {
    if (userId === 0) throw new StoreUnavailable(peer.StoreStatus.INVALID, 'user_id must not be 0');
    const end = await this.lastPosition(userId);
    const cursor = await this.cursor(userId);
    if (after > end) {
      throw new StoreUnavailable(peer.StoreStatus.OUT_OF_RANGE, `position ${after} is past the end of user ${userId}'s inbox (${end})`);
    }
    const count = Math.min(limit, MAX_RANGE);
    const rows = count === 0 ? [] : await this.store.range(key(ENTRY, u32(userId), u64(after + 1)), key(ENTRY, u32(userId), u64(end + 1)), count);
    return {
      status: peer.StoreStatus.STORED, cursor, endPosition: end,
      entries: rows.map((r) => ({ position: readU64(r.key, 1 + 4), msgId: readLong64(r.value) })),
    };
  }

  private async setCursor(userId: number, position: number): Promise<StoreReplyInit> {
    const end = await this.lastPosition(userId);
    if (position > end) {
      throw new StoreUnavailable(peer.StoreStatus.OUT_OF_RANGE, `cursor ${position} is past the end of user ${userId}'s inbox (${end})`);
    }
    const current = await this.cursor(userId);
    if (position > current) await this.store.propose([{ key: key(CURSOR, u32(userId)), value: u64(position) }]);
    return { status: peer.StoreStatus.STORED, cursor: Math.max(position, current), endPosition: end };
  }
}

export function startPi(ctx: RoleContext): Promise<RoleInstance> {
  return startStoreRole(ctx, 'pi', (store) => new PiMachine(store));
}
