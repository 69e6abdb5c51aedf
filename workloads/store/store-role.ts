// What pi and xiu share as processes: a ReplicatedStore whose voters are the
// partition's replicas ("<role>-<partition>-<replica>"), links to the other
// replicas for its replication messages and data copies, and a peer server
// that takes StoreRequests. Only the serving leader answers them; any other
// replica answers NOT_LEADER naming the replica it takes for the leader, so
// clients find a new leader without the registry.
import { join } from 'node:path';
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, storeRequestOf, toNumber, type PeerFrame, type PeerFrameInit, type StoreRequest } from '../protocol/index.js';
import type { Member } from '../registry/schema.js';
import { fromWire, toWire } from '../replication/wire.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import type { PeerLink } from '../transport/peer-link.js';
import { PeerPool } from '../transport/peer-pool.js';
import { PeerServer } from '../transport/peer-server.js';
import { ReplicatedStore, StoreUnavailable, type CopyReply, type CopyRequest } from './replicated-store.js';

export type { StoreRequest };
export type StoreReplyInit = NonNullable<PeerFrameInit['storeReply']>;

/** A role's state machine over the replicated store. */
export interface StoreMachine {
  /** Called on becoming the serving leader: reload whatever the machine caches. */
  onLeader(): Promise<void>;
  /** Answers one request (the leader's only); throw StoreUnavailable for a status. */
  handle(request: StoreRequest): Promise<StoreReplyInit>;
}

const requests = new Counter({ name: 'groupchat_store_requests_total', help: 'Store requests', labelNames: ['op', 'status'], registers: [metrics] });
const refusedRaft = new Counter({ name: 'groupchat_store_raft_refused_total', help: 'Replication frames refused (from outside the partition, or malformed)', registers: [metrics] });

const COPY_TIMEOUT_MS = 5000;

export async function startStoreRole(
  ctx: RoleContext,
  role: 'pi' | 'xiu',
  createMachine: (store: ReplicatedStore) => StoreMachine,
): Promise<RoleInstance> {
  const { config, log, registry } = ctx;
  const partition = config.partition;
  const voter = (replica: number) => `${role}-${partition}-${replica}`;
  const replicaOf = (voterId: string) => Number(voterId.slice(voterId.lastIndexOf('-') + 1));
  const isPeer = (m: Member) => m.role === role && m.partition === partition && m.replica !== config.replica;
  const dataDir = config.dataDir ?? join('data', voter(config.replica));
  // The voters: the partition's replicas in the topology at start (a change of the count reaches a
  // replica's log when it restarts, as for the brokers; docs/decisions.md).
  const replicas = Math.max(registry.topology().roles[role]?.replicas ?? 1, config.replica + 1);

  const peers = new PeerPool(ctx.self);
  const linkTo = (voterId: string): PeerLink | null => {
    const member = peers.members().find((m) => m.replica === replicaOf(voterId));
    return member ? peers.link(member.id) : null;
  };
  const copies = new Map<number, (reply: CopyReply) => void>();
  let nextCopy = 1;
  const copyFrom = (voterId: string, request: CopyRequest) => new Promise<CopyReply>((resolve) => {
    const link = linkTo(voterId);
    if (!link) return resolve({ ok: false, rows: [], done: false, message: `no link to ${voterId}` });
    const correlation = nextCopy++;
    const timer = setTimeout(() => settle({ ok: false, rows: [], done: false, message: `${voterId} did not answer within ${COPY_TIMEOUT_MS} ms` }), COPY_TIMEOUT_MS);
    const settle = (reply: CopyReply) => { clearTimeout(timer); copies.delete(correlation); resolve(reply); };
    copies.set(correlation, settle);
    link.send({ storeCopyRequest: { correlation, afterKey: request.afterKey, minApplied: request.minApplied } });
  });
  peers.on('up', (_member, link) => link.on('frame', (frame) => {
    if (frame.body === 'storeCopyReply') copies.get(frame.storeCopyReply.correlation)?.(frame.storeCopyReply);
  }));
  const syncPeers = () => peers.sync(registry.members().filter(isPeer));
  registry.on('members', syncPeers);
  syncPeers();

  const store = await ReplicatedStore.open({
    self: voter(config.replica), voters: Array.from({ length: replicas }, (_, r) => voter(r)), dataDir, log,
    send: (message) => linkTo(message.to)?.send({ raft: toWire(message, partition) }),
    copyFrom,
  });
  const machine = createMachine(store);
  let loading: Promise<void> = Promise.resolve();
  store.on('leadership', (leader) => { if (leader) loading = machine.onLeader(); });

  /** The reason a frame claiming to come from a replica of this partition is refused, or null. */
  const refusal = (link: PeerLink, from: string | null): string | null => {
    const sender = registry.members().find((m) => m.id === link.remote?.memberId);
    if (!sender || !isPeer(sender) || (from !== null && from !== voter(sender.replica))) {
      return `${link.remote?.memberId ?? 'an unknown peer'} is not a replica of ${role} partition ${partition}${from ? ` speaking as ${from}` : ''}`;
    }
    return null;
  };

  const onRaft = (link: PeerLink, frame: Extract<PeerFrame, { body: 'raft' }>['raft']) => {
    const message = fromWire(frame);
    const problem = typeof message === 'string' ? message
      : frame.partition !== partition || message.to !== voter(config.replica) ? `a replication message for ${message.to} in partition ${frame.partition}`
        : refusal(link, message.from);
    if (problem !== null || typeof message === 'string') {
      refusedRaft.inc();
      return link.fail(13, problem ?? 'malformed');
    }
    store.receive(message);
  };

  const onCopyRequest = (link: PeerLink, request: Extract<PeerFrame, { body: 'storeCopyRequest' }>['storeCopyRequest']) => {
    const problem = refusal(link, null);
    if (problem !== null) return link.fail(13, problem);
    void store.serveCopy({ afterKey: request.afterKey, minApplied: toNumber(request.minApplied) }).then(
      (reply) => link.send({ storeCopyReply: { ...reply, correlation: request.correlation } }),
      (err: Error) => link.send({ storeCopyReply: { correlation: request.correlation, ok: false, message: err.message } }),
    );
  };

  const onStoreRequest = (link: PeerLink, request: StoreRequest) => {
    const op = request.op ?? 'none';
    const answer = async (): Promise<StoreReplyInit> => {
      if (!store.serving) throw new StoreUnavailable(peer.StoreStatus.NOT_LEADER, `${voter(config.replica)} is not the ${role} partition ${partition} leader`);
      await loading;
      return machine.handle(request);
    };
    answer().then(
      (reply) => {
        requests.inc({ op, status: peer.StoreStatus[reply.status ?? 0] ?? 'STORED' });
        link.send({ storeReply: { ...reply, correlation: request.correlation } });
      },
      (err: Error) => {
        const status = err instanceof StoreUnavailable ? err.status : peer.StoreStatus.INVALID;
        requests.inc({ op, status: peer.StoreStatus[status] ?? String(status) });
        const leader = status === peer.StoreStatus.NOT_LEADER ? store.leaderId : null;
        link.send({ storeReply: { correlation: request.correlation, status, message: err.message, leaderKnown: leader !== null, leaderReplica: leader ? replicaOf(leader) : 0 } });
      },
    );
  };

  const server = new PeerServer(ctx.self);
  server.on('link', (link) => {
    link.on('frame', (frame) => {
      switch (frame.body) {
        case 'raft': return onRaft(link, frame.raft);
        case 'storeCopyRequest': return onCopyRequest(link, frame.storeCopyRequest);
        case 'storeRequest': return onStoreRequest(link, storeRequestOf(frame));
        default: link.fail(10, `a ${role} accepts only StoreRequest, StoreCopyRequest and replication frames, got ${frame.body}`);
      }
    });
  });
  const address = await server.listen(config.port, config.host);
  log.info({ address, dataDir, voters: replicas }, `${role} listening`);
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => true,
    advertise: () => ({ leader: store.serving }),
    stop: async () => {
      peers.close();
      await server.close();
      await store.close();
    },
  };
}
