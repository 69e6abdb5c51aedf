// Relay: partitioned by user id. Knows on which gateways each of its users is
// online (gateways report presence), stores one-to-one messages durably
// (payload in Xiu, MsgID in the recipient's Pi inbox) before acknowledging
// them, and pumps each online user's inbox to its gateways (inbox-pump.ts).
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { isZeroId, Long, peer, toNumber, type PeerFrame } from '../protocol/index.js';
import { pickReplica, replicasOf } from '../routing/placement.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { StoreClient, StoreError } from '../store/store-client.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerServer } from '../transport/peer-server.js';
import { MAX_PAYLOAD_BYTES, partitionOfMsgId } from '../xiu/xiu.js';
import { InboxPump, type GatewayState, type StoredPayload } from './inbox-pump.js';

const directs = new Counter({ name: 'groupchat_relay_direct_total', help: 'One-to-one messages', labelNames: ['result'], registers: [metrics] });

type DirectSend = Extract<PeerFrame, { body: 'directSend' }>['directSend'];
type InboxAck = Extract<PeerFrame, { body: 'inboxAck' }>['inboxAck'];

export async function startRelay(ctx: RoleContext): Promise<RoleInstance> {
  const { registry, log, config } = ctx;
  const pi = new StoreClient('pi', registry, ctx.self);
  const xiu = new StoreClient('xiu', registry, ctx.self);
  const gateways = new Map<string, GatewayState & { link: PeerLink }>();
  const server = new PeerServer(ctx.self);

  const relayTopology = () => registry.topology().roles.relay ?? { partitions: 1, replicas: 1 };
  const inbox = new InboxPump({
    gateways,
    /** With several replicas, one pumps a user's inbox: the one publishing would pick. */
    pumpsFor: (userId) => {
      const { partitions, replicas } = relayTopology();
      const live = replicasOf(registry.members(), 'relay', userId % partitions);
      return (pickReplica(userId, replicas, live)?.id ?? ctx.memberId) === ctx.memberId;
    },
    cursor: async (userId) => toNumber((await pi.call(userId % pi.partitions(), { piRange: { userId, afterPosition: 0, limit: 0 } })).cursor),
    range: async (userId, afterPosition, limit) => (await pi.call(userId % pi.partitions(), { piRange: { userId, afterPosition, limit } })).entries,
    payloads: async (msgIds) => {
      const byPartition = new Map<number, Long[]>();
      for (const id of msgIds) {
        const p = partitionOfMsgId(id);
        byPartition.set(p, [...(byPartition.get(p) ?? []), id]);
      }
      const payloads = new Map<string, StoredPayload>();
      for (const [p, ids] of byPartition) {
        for (const m of (await xiu.call(p, { xiuGet: { msgIds: ids } })).messages) payloads.set(m.msgId.toString(), m);
      }
      return payloads;
    },
    retryLater: (run, delayMs) => setTimeout(run, delayMs).unref(),
    log,
  });

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
      inbox.pump(direct.toUser, {
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
            inbox.restart(userId, gatewayId);
          }
          for (const userId of presence.online) {
            gateway.users.add(userId);
            inbox.restart(userId, gatewayId); // a (re)login starts at the cursor
            inbox.pump(userId);
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
      for (const userId of gateway.users) inbox.restart(userId, gatewayId);
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
