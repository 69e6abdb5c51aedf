// Xiu: message payloads, durable and replicated. Assigns each message its
// MsgID = 16-bit partition | 10 reserved bits | 38-bit sequence, and serves
// reads by id and by range. A put is idempotent on (sender, recipient, client
// message id).
import { isZeroId, Long, messageIdKey, peer } from '../protocol/index.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { key, long64, readLong64, readU64, u32, u64 } from '../store/keys.js';
import { StoreUnavailable, type ReplicatedStore } from '../store/replicated-store.js';
import { startStoreRole, type StoreMachine, type StoreReplyInit, type StoreRequest } from '../store/store-role.js';

export const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_READ = 1000;
const SEQUENCE_BITS = 38;

export function msgIdOf(partition: number, sequence: number): Long {
  // sequence < 2^38: its top 6 bits sit in the high word below the reserved 10 bits.
  const high = ((partition & 0xffff) << 16) | Math.floor(sequence / 2 ** 32);
  return Long.fromBits(sequence % 2 ** 32, high >>> 0, true);
}

export function partitionOfMsgId(id: Long): number {
  return id.high >>> 16;
}

type XiuPut = Extract<StoreRequest, { op: 'xiuPut' }>['xiuPut'];

const MESSAGE = 'm';
const CLIENT_ID = 'c';
const LAST_SEQUENCE = key('s');

class XiuMachine implements StoreMachine {
  private lastSequence = 0;
  private readonly inFlight = new Map<string, Promise<Long>>();

  constructor(private readonly store: ReplicatedStore, private readonly partition: number) {}

  async onLeader(): Promise<void> {
    const raw = await this.store.get(LAST_SEQUENCE);
    this.lastSequence = raw ? readU64(raw) : 0;
    this.inFlight.clear();
  }

  async handle(request: StoreRequest): Promise<StoreReplyInit> {
    switch (request.op) {
      case 'xiuPut': return this.put(request.xiuPut);
      case 'xiuGet': return this.get(request.xiuGet.msgIds);
      case 'xiuRange': return this.range(request.xiuRange.afterMsgId, request.xiuRange.limit);
      default: throw new StoreUnavailable(peer.StoreStatus.INVALID, `xiu does not serve ${request.op}`);
    }
  }

  private async put(put: XiuPut): Promise<StoreReplyInit> {
    if (isZeroId(put.clientMessageId)) throw new StoreUnavailable(peer.StoreStatus.INVALID, 'client_message_id is required');
    if (put.payload.length > MAX_PAYLOAD_BYTES) {
      throw new StoreUnavailable(peer.StoreStatus.INVALID, `payload of ${put.payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
    }
    const clientKey = `${put.senderId}/${put.recipientId}/${messageIdKey(put.clientMessageId)}`;
    let pending = this.inFlight.get(clientKey);
    if (!pending) {
      pending = this.write(put);
      this.inFlight.set(clientKey, pending);
      // The failure is the caller's (it awaits pending); this copy of it only cleans up.
      pending.finally(() => this.inFlight.delete(clientKey)).catch(() => undefined);
    }
    return { status: peer.StoreStatus.STORED, msgId: await pending };
  }

  private async write(put: XiuPut): Promise<Long> {
    const existing = await this.store.get(key(CLIENT_ID, u32(put.senderId), u32(put.recipientId), long64(put.clientMessageId)));
    if (existing) return readLong64(existing); // written when applied, so committed
    if (this.lastSequence + 1 >= 2 ** SEQUENCE_BITS) throw new StoreUnavailable(peer.StoreStatus.INVALID, 'partition sequence exhausted');
    const msgId = msgIdOf(this.partition, ++this.lastSequence);
    const stored = peer.StoredMessage.encode({
      msgId, clientMessageId: put.clientMessageId, senderId: put.senderId, payload: put.payload, sentAtMs: put.sentAtMs,
    }).finish();
    await this.store.propose([
      { key: key(MESSAGE, long64(msgId)), value: stored },
      { key: key(CLIENT_ID, u32(put.senderId), u32(put.recipientId), long64(put.clientMessageId)), value: long64(msgId) },
      { key: LAST_SEQUENCE, value: u64(this.lastSequence) },
    ]);
    return msgId;
  }

  private async get(ids: Long[]): Promise<StoreReplyInit> {
    if (ids.length > MAX_READ) throw new StoreUnavailable(peer.StoreStatus.INVALID, `at most ${MAX_READ} ids per read`);
    const messages = [];
    for (const id of ids) {
      const raw = await this.store.get(key(MESSAGE, long64(id)));
      if (raw) messages.push(peer.StoredMessage.decode(raw));
    }
    return { status: peer.StoreStatus.STORED, messages };
  }

  private async range(after: Long, limit: number): Promise<StoreReplyInit> {
    const count = Math.min(limit || 100, MAX_READ);
    const from = Long.fromBits(after.low, after.high, true).add(1);
    const rows = await this.store.range(key(MESSAGE, long64(from)), key(MESSAGE, Buffer.alloc(8, 0xff)), count);
    return { status: peer.StoreStatus.STORED, messages: rows.map((r) => peer.StoredMessage.decode(r.value)) };
  }
}

export function startXiu(ctx: RoleContext): Promise<RoleInstance> {
  return startStoreRole(ctx, 'xiu', (store) => new XiuMachine(store, ctx.config.partition));
}
