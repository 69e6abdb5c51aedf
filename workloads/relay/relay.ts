// Relay: partitioned by user id. Knows on which gateways each of its users is
// online (gateways report presence), stores one-to-one messages durably
// (payload in Xiu, MsgID in the recipient's Pi inbox) before acknowledging
// them, and pumps each online user's inbox to its gateways in position order,
// starting after the user's acknowledged cursor. A message just stored at the
// very position a gateway needs next goes straight to it, without reading it
// back from Pi and Xiu.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { isZeroId, Long, peer, toNumber, type PeerFrame } from '../protocol/index.js';
import { pickReplica, replicasOf } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { StoreClient, StoreError } from '../store/store-client.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerServer } from '../transport/peer-server.js';
import { MAX_PAYLOAD_BYTES, partitionOfMsgId } from '../xiu/xiu.js';

const PUMP_BATCH = 200;
const PUMP_RETRY_MS = 500;

const directs = new Counter({ name: 'groupchat_relay_direct_total', help: 'One-to-one messages', labelNames: ['result'], registers: [metrics] });
const pushed = new Counter({ name: 'groupchat_relay_inbox_pushed_total', help: 'Inbox items pushed to gateways', registers: [metrics] });
const missingPayloads = new Counter({ name: 'groupchat_relay_missing_payload_total', help: 'Inbox entries whose payload Xiu did not return (not delivered; retried)', registers: [metrics] });

type DirectSend = Extract<PeerFrame, { body: 'directSend' }>['directSend'];
type InboxAck = Extract<PeerFrame, { body: 'inboxAck' }>['inboxAck'];

interface GatewayState { link: PeerLink; seq: number; users: Set<number> }

export async function startRelay(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const pi = new StoreClient('pi', registry, ctx.self);
  const xiu = new StoreClient('xiu', registry, ctx.self);
  const gateways = new Map<string, GatewayState>();
  /** `${user}@${gateway}` → last position pushed there (undefined: start at the cursor). */
  const pushedUpTo = new Map<string, number>();
  const pumping = new Set<string>();
  const again = new Set<string>();
  const server = new PeerServer(ctx.self);

  const relayTopology = () => registry.topology().roles.relay ?? { partitions: 1, replicas: 1 };
  /** With several replicas, one pumps a user's inbox: the one publishing would pick. */
  const pumpsFor = (userId: number) => {
    const { partitions, replicas } = relayTopology();
    const live = replicasOf(registry.members(), 'relay', userId % partitions);
    return (pickReplica(userId, replicas, live)?.id ?? ctx.memberId) === ctx.memberId;
  };

  const pumpTo = async (userId: number, gatewayId: string): Promise<void> => {
    const key = `${userId}@${gatewayId}`;
    if (pumping.has(key)) { again.add(key); return; }
    pumping.add(key);
    try {
      do {
        again.delete(key);
        for (;;) {
          const gateway = gateways.get(gatewayId);
          if (!gateway || !gateway.users.has(userId) || gateway.link.closed) return;
          const piPartition = userId % pi.partitions();
          let after = pushedUpTo.get(key);
          if (after === undefined) {
            after = toNumber((await pi.call(piPartition, { piRange: { userId, afterPosition: 0, limit: 0 } })).cursor);
            pushedUpTo.set(key, after);
          }
          const range = await pi.call(piPartition, { piRange: { userId, afterPosition: after, limit: PUMP_BATCH } });
          if (range.entries.length === 0) break;
          const byPartition = new Map<number, Long[]>();
          for (const e of range.entries) {
            const p = partitionOfMsgId(e.msgId);
            byPartition.set(p, [...(byPartition.get(p) ?? []), e.msgId]);
          }
          const payloads = new Map<string, { senderId: number; payload: Uint8Array; sentAtMs: Long }>();
          for (const [p, ids] of byPartition) {
            for (const m of (await xiu.call(p, { xiuGet: { msgIds: ids } })).messages) payloads.set(m.msgId.toString(), m);
          }
          // Never deliver what was not stored: the items up to the first entry whose payload is missing
          // go out; that one and what follows wait for a retry, and the position stays before it.
          const items = [];
          let missing: (typeof range.entries)[number] | undefined;
          for (const e of range.entries) {
            const m = payloads.get(e.msgId.toString());
            if (!m) { missing = e; break; }
            items.push({ position: e.position, msgId: e.msgId, senderId: m.senderId, payload: m.payload, sentAtMs: m.sentAtMs });
          }
          if (items.length > 0) {
            if (!gateways.get(gatewayId)?.link.send({ inboxPush: { userId, items } })) {
              if (gateways.get(gatewayId)?.link.closed !== false) return;
            }
            pushed.inc(items.length);
            pushedUpTo.set(key, toNumber(items[items.length - 1]!.position));
          }
          if (missing) {
            missingPayloads.inc();
            throw new Error(`Xiu has no payload for message ${missing.msgId.toString()} at inbox position ${missing.position.toString()}; not delivered`);
          }
        }
      } while (again.has(key));
    } catch (err) {
      // Pi or Xiu changing leader: start again from the cursor shortly (the
      // gateway drops positions it already delivered).
      log.warn({ user: userId, gateway: gatewayId, err: (err as Error).message }, 'inbox pump failed; retrying');
      pushedUpTo.delete(key);
      setTimeout(() => void pumpTo(userId, gatewayId), PUMP_RETRY_MS).unref();
    } finally {
      pumping.delete(key);
    }
  };

  type InboxItem = NonNullable<Parameters<typeof peer.InboxPush.encode>[0]['items']>[number];
  const pump = (userId: number, stored?: { position: number; item: InboxItem }) => {
    if (!pumpsFor(userId)) return;
    for (const [gatewayId, gateway] of gateways) {
      if (!gateway.users.has(userId)) continue;
      const key = `${userId}@${gatewayId}`;
      if (stored && !pumping.has(key) && pushedUpTo.get(key) === stored.position - 1 && !gateway.link.closed) {
        gateway.link.send({ inboxPush: { userId, items: [stored.item] } });
        pushed.inc();
        pushedUpTo.set(key, stored.position);
        continue;
      }
      void pumpTo(userId, gatewayId);
    }
  };

  const onDirect = async (link: PeerLink, direct: DirectSend) => {
    const reply = (status: number, message = '', position = 0) =>
      link.send({ directAck: { correlation: direct.correlation, status, message, position } });
    if (direct.toUser === 0 || direct.fromUser === 0 || isZeroId(direct.clientMessageId)) {
      directs.inc({ result: 'invalid' });
      return reply(peer.StoreStatus.INVALID, 'from_user, to_user and client_message_id are required');
    }
    if (direct.payload.length > MAX_PAYLOAD_BYTES) {
      directs.inc({ result: 'invalid' });
      return reply(peer.StoreStatus.INVALID, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`);
    }
    try {
      const stored = await xiu.call(direct.toUser % xiu.partitions(), {
        xiuPut: {
          clientMessageId: direct.clientMessageId, senderId: direct.fromUser, recipientId: direct.toUser,
          payload: direct.payload, sentAtMs: direct.sentAtMs,
        },
      });
      const appended = await pi.call(direct.toUser % pi.partitions(), { piAppend: { userId: direct.toUser, msgId: stored.msgId } });
      directs.inc({ result: 'stored' });
      const position = toNumber(appended.position);
      reply(peer.StoreStatus.STORED, '', position);
      pump(direct.toUser, {
        position,
        item: { position, msgId: stored.msgId, senderId: direct.fromUser, payload: direct.payload, sentAtMs: direct.sentAtMs },
      });
    } catch (err) {
      directs.inc({ result: 'failed' });
      reply(err instanceof StoreError ? err.status : peer.StoreStatus.NOT_REPLICATED, (err as Error).message);
    }
  };

  const onInboxAck = async (link: PeerLink, ack: InboxAck) => {
    try {
      const done = await pi.call(ack.userId % pi.partitions(), { piSetCursor: { userId: ack.userId, position: ack.position } });
      link.send({ directAck: { correlation: ack.correlation, status: peer.StoreStatus.STORED, position: done.cursor } });
    } catch (err) {
      link.send({ directAck: { correlation: ack.correlation, status: err instanceof StoreError ? err.status : peer.StoreStatus.INVALID, message: (err as Error).message } });
    }
  };

  server.on('link', (link) => {
    const gatewayId = link.remote!.memberId;
    link.on('frame', (frame) => {
      switch (frame.body) {
        case 'directSend': return void onDirect(link, frame.directSend);
        case 'inboxAck': return void onInboxAck(link, frame.inboxAck);
        case 'presence': {
          const presence = frame.presence;
          const seq = toNumber(presence.gatewaySeq);
          let gateway = gateways.get(gatewayId);
          if (gateway && gateway.link !== link) gateway.link = link;
          if (gateway && seq <= gateway.seq) return; // stale
          if (!gateway) gateways.set(gatewayId, (gateway = { link, seq, users: new Set() }));
          gateway.seq = seq;
          if (presence.full) gateway.users.clear();
          for (const userId of presence.offline) {
            gateway.users.delete(userId);
            pushedUpTo.delete(`${userId}@${gatewayId}`);
          }
          for (const userId of presence.online) {
            gateway.users.add(userId);
            pushedUpTo.delete(`${userId}@${gatewayId}`); // a (re)login starts at the cursor
            pump(userId);
          }
          return;
        }
        default:
          link.fail(10, `a relay does not accept ${frame.body} frames`);
      }
    });
    link.on('close', () => {
      const gateway = gateways.get(gatewayId);
      if (gateway?.link !== link) return;
      gateways.delete(gatewayId);
      for (const userId of gateway.users) pushedUpTo.delete(`${userId}@${gatewayId}`);
    });
  });

  const address = await server.listen(config.port, config.host);
  log.info({ address }, 'relay listening');
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => true,
    stop: async () => {
      pi.close();
      xiu.close();
      await server.close();
    },
  };
}
