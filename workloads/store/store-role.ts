// What pi and xiu share as processes: a ReplicatedStore, a peer server that
// takes StoreRequests (answered by the leader only) and replication frames,
// and the leader flag in the member record so clients find the leader.
import { join } from 'node:path';
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, storeRequestOf, type PeerFrameInit, type StoreRequest } from '../protocol/index.js';
import type { RoleContext, RoleInstance } from '../runtime/role-process.js';
import { PeerServer } from '../transport/peer-server.js';
import { ReplicatedStore, StoreUnavailable } from './replicated-store.js';

export type { StoreRequest };
export type StoreReplyInit = NonNullable<PeerFrameInit['storeReply']>;

/** A role's state machine over the replicated store. */
export interface StoreMachine {
  /** Called on becoming leader: reload whatever the machine caches. */
  onLeader(): Promise<void>;
  /** Answers one request (the leader's only); throw StoreUnavailable for a status. */
  handle(request: StoreRequest): Promise<StoreReplyInit>;
}

const requests = new Counter({ name: 'groupchat_store_requests_total', help: 'Store requests', labelNames: ['op', 'status'], registers: [metrics] });

export async function startStoreRole(
  ctx: RoleContext,
  role: 'pi' | 'xiu',
  createMachine: (store: ReplicatedStore) => StoreMachine,
): Promise<RoleInstance> {
  const { config, log, registry } = ctx;
  const dataDir = config.dataDir ?? join('data', `${role}-${config.partition}-${config.replica}`);
  const store = await ReplicatedStore.open({ role, partition: config.partition, self: ctx.self, dataDir, registry, log });
  const machine = createMachine(store);
  let loading: Promise<void> = Promise.resolve();
  store.on('leadership', (leader) => { if (leader) loading = machine.onLeader(); });

  const server = new PeerServer(ctx.self);
  server.on('link', (link) => {
    link.on('frame', (frame) => {
      if (store.handleFrame(link, frame)) return;
      if (frame.body !== 'storeRequest') {
        link.fail(10, `a ${role} accepts only StoreRequest and replication frames, got ${frame.body}`);
        return;
      }
      const request = storeRequestOf(frame);
      const op = request.op ?? 'none';
      const answer = async (): Promise<StoreReplyInit> => {
        if (!store.leader) throw new StoreUnavailable(peer.StoreStatus.NOT_LEADER, `${ctx.memberId} is not the leader`);
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
          link.send({ storeReply: { correlation: request.correlation, status, message: err.message } });
        },
      );
    });
  });
  const address = await server.listen(config.port, config.host);
  log.info({ address, dataDir }, `${role} listening`);
  return {
    member: { address: `${ctx.advertiseHost}:${address.split(':').pop()}` },
    isReady: () => true,
    advertise: () => ({ leader: store.leader }),
    stop: async () => {
      await server.close();
      await store.close();
    },
  };
}
