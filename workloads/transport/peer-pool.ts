// Keeps one reconnecting link to every member of a set the registry names,
// opening links to new members and closing links to departed ones.
import { EventEmitter } from 'node:events';
import { PeerClient } from './peer-client.js';
import type { LinkOptions, PeerIdentity, PeerLink } from './peer-link.js';
import { DEFAULT_LINK_OPTIONS } from './peer-link.js';

/** What the pool needs of a member: the registry's Member, or an SDK's address list. */
export interface Dialable {
  id: string;
  address: string;
}

export interface PeerPoolEvents<M extends Dialable> {
  up: [M, PeerLink];
  down: [M];
  removed: [M];
}

export class PeerPool<M extends Dialable = import('../registry/schema.js').Member> extends EventEmitter<PeerPoolEvents<M>> {
  private readonly clients = new Map<string, { member: M; client: PeerClient }>();

  constructor(private readonly self: PeerIdentity, private readonly options: LinkOptions = DEFAULT_LINK_OPTIONS) {
    super();
  }

  /** Makes the pool hold exactly these members. */
  sync(members: readonly M[]): void {
    const wanted = new Map(members.map((m) => [m.id, m]));
    for (const [id, entry] of this.clients) {
      const next = wanted.get(id);
      if (!next || next.address !== entry.member.address) {
        entry.client.close();
        this.clients.delete(id);
        this.emit('removed', entry.member);
      } else {
        entry.member = next;
      }
    }
    for (const member of wanted.values()) {
      if (this.clients.has(member.id)) continue;
      const client = new PeerClient(member.address, this.self, this.options);
      const entry = { member, client };
      client.on('up', (link) => this.emit('up', entry.member, link));
      client.on('down', () => this.emit('down', entry.member));
      this.clients.set(member.id, entry);
    }
  }

  /** The live link to a member, or null while it is down or unknown. */
  link(memberId: string): PeerLink | null {
    return this.clients.get(memberId)?.client.ready ?? null;
  }

  isUp(memberId: string): boolean {
    return this.link(memberId) !== null;
  }

  members(): M[] {
    return [...this.clients.values()].map((e) => e.member);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
