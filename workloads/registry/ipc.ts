// The embedded registry across processes: the local launcher holds an
// EmbeddedRegistry and each child reaches it over its Node IPC channel.
// Members of a child that exits are removed at once (its "session" ended),
// and its TTL covers a child that hangs.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import type { EmbeddedRegistry } from './embedded.js';
import type { LeaseState, Registration, Registry, RegistryEvents } from './registry.js';
import { MemberSchema, TopologySchema, type Member, type Topology } from './schema.js';

const ChildMessage = z.discriminatedUnion('registry', [
  z.object({ registry: z.literal('put'), member: MemberSchema }),
  z.object({ registry: z.literal('renew'), id: z.string() }),
  z.object({ registry: z.literal('remove'), id: z.string() }),
  z.object({ registry: z.literal('lease'), call: z.number(), name: z.string(), holder: z.string(), ttlMs: z.number().positive() }),
]);

const Expired = z.object({ registry: z.literal('expired'), id: z.string() });

const LeaseReply = z.object({
  registry: z.literal('leaseState'),
  call: z.number(),
  holder: z.string().nullable(),
  term: z.number(),
});

const ParentMessage = z.object({
  registry: z.literal('state'),
  topology: TopologySchema,
  members: z.array(MemberSchema),
});

type ParentMessage = z.infer<typeof ParentMessage>;

/** Launcher side: serves one child. */
export function serveRegistryOverIpc(registry: EmbeddedRegistry, child: ChildProcess): void {
  const owned = new Set<string>();
  const push = () => {
    if (!child.connected) return;
    const message: ParentMessage = { registry: 'state', topology: registry.topology(), members: registry.members() };
    child.send(message, (err) => { if (err) { /* the child is gone; exit handles it */ } });
  };
  const onChange = () => push();
  registry.on('members', onChange);
  registry.on('topology', onChange);
  child.on('message', (raw) => {
    const parsed = ChildMessage.safeParse(raw);
    if (!parsed.success) return; // not a registry message
    const message = parsed.data;
    if (message.registry === 'put') {
      owned.add(message.member.id);
      registry.put(message.member);
    } else if (message.registry === 'renew') {
      // Expired while the child was hung: ask it to register again.
      if (!registry.renew(message.id) && child.connected) child.send({ registry: 'expired', id: message.id });
    } else if (message.registry === 'remove') {
      owned.delete(message.id);
      registry.remove(message.id);
    } else {
      const state = registry.lease(message.name, message.holder, message.ttlMs);
      if (child.connected) child.send({ registry: 'leaseState', call: message.call, ...state });
    }
  });
  child.once('exit', () => {
    registry.off('members', onChange);
    registry.off('topology', onChange);
    for (const id of owned) registry.remove(id);
  });
  push();
}

/** Child side: a Registry backed by the launcher's. */
export class IpcRegistry extends EventEmitter<RegistryEvents> implements Registry {
  private currentTopology: Topology | null = null;
  private currentMembers: Member[] = [];
  private nextCall = 1;
  private readonly calls = new Map<number, (state: LeaseState) => void>();
  /** Registered members of this process, to register again after an expiry. */
  private readonly own = new Map<string, () => Member>();
  private readonly onMessage = (raw: unknown) => {
    const expired = Expired.safeParse(raw);
    if (expired.success) {
      const member = this.own.get(expired.data.id)?.();
      if (member && process.connected) process.send!({ registry: 'put', member });
      return;
    }
    const reply = LeaseReply.safeParse(raw);
    if (reply.success) {
      this.calls.get(reply.data.call)?.({ holder: reply.data.holder, term: reply.data.term });
      this.calls.delete(reply.data.call);
      return;
    }
    const parsed = ParentMessage.safeParse(raw);
    if (!parsed.success) return;
    const topologyChanged = JSON.stringify(parsed.data.topology) !== JSON.stringify(this.currentTopology);
    this.currentTopology = parsed.data.topology;
    this.currentMembers = parsed.data.members;
    if (topologyChanged) this.emit('topology', this.currentTopology);
    this.emit('members', this.currentMembers);
  };

  private constructor(private readonly ttlMs: number) {
    super();
    process.on('message', this.onMessage);
  }

  /** Resolves once the launcher has sent its first state. */
  static async connect(ttlMs = 3000): Promise<IpcRegistry> {
    if (!process.send) throw new Error('the ipc registry needs a parent process with an IPC channel (run under `groupchat up`)');
    const registry = new IpcRegistry(ttlMs);
    await new Promise<void>((resolve) => registry.once('members', () => resolve()));
    return registry;
  }

  topology(): Topology {
    return this.currentTopology!;
  }

  members(): Member[] {
    return this.currentMembers;
  }

  async register(member: Member): Promise<Registration> {
    let current = MemberSchema.parse(member);
    const send = (message: z.infer<typeof ChildMessage>) => { if (process.connected) process.send!(message); };
    send({ registry: 'put', member: current });
    this.own.set(current.id, () => current);
    const renewal = setInterval(() => send({ registry: 'renew', id: current.id }), this.ttlMs / 3);
    renewal.unref();
    return {
      update: async (patch) => {
        current = MemberSchema.parse({ ...current, ...patch });
        send({ registry: 'put', member: current });
      },
      close: async () => {
        clearInterval(renewal);
        this.own.delete(current.id);
        send({ registry: 'remove', id: current.id });
      },
    };
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseState> {
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      if (!process.connected) return reject(new Error('registry unreachable: the launcher is gone'));
      this.calls.set(call, resolve);
      process.send!({ registry: 'lease', call, name, holder, ttlMs });
    });
  }

  async close(): Promise<void> {
    process.off('message', this.onMessage);
  }
}
