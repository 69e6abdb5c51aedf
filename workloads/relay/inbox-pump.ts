// The relay's inbox pump: each online user's inbox goes to each gateway the
// user is on, in position order, starting after the user's acknowledged
// cursor. A message just stored at the very position a gateway needs next
// goes straight to it, without reading it back from Pi and Xiu. An entry whose
// payload Xiu does not return is never delivered: the position stays before
// it and the pump tries again.
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import type { Logger } from '../observability/logger.js';
import { toNumber, type Long, type peer } from '../protocol/index.js';

const PUMP_BATCH = 200;
const PUMP_RETRY_MS = 500;

const pushed = new Counter({ name: 'groupchat_relay_inbox_pushed_total', help: 'Inbox items pushed to gateways', registers: [metrics] });
const missingPayloads = new Counter({ name: 'groupchat_relay_missing_payload_total', help: 'Inbox entries whose payload Xiu did not return (not delivered; retried)', registers: [metrics] });

export type InboxItem = NonNullable<Parameters<typeof peer.InboxPush.encode>[0]['items']>[number];
export interface InboxEntry { position: Long; msgId: Long }
export interface StoredPayload { senderId: number; payload: Uint8Array; sentAtMs: Long }

/** A gateway as the relay knows it: its link, and which of this relay's users are on it. */
export interface GatewayState {
  link: { readonly closed: boolean; send(frame: { inboxPush: { userId: number; items: InboxItem[] } }): boolean };
  seq: number;
  users: Set<number>;
}

export interface InboxPumpDeps {
  gateways: Map<string, GatewayState>;
  /** Whether this relay replica pumps the user's inbox (one replica does). */
  pumpsFor(userId: number): boolean;
  /** The user's acknowledged inbox position (Pi). */
  cursor(userId: number): Promise<number>;
  /** Up to limit inbox entries after a position, in position order (Pi). */
  range(userId: number, afterPosition: number, limit: number): Promise<InboxEntry[]>;
  /** The stored payloads of these messages, keyed by the id's toString(); a missing one is absent (Xiu). */
  payloads(msgIds: Long[]): Promise<Map<string, StoredPayload>>;
  /** Runs a failed pump again later (setTimeout). */
  retryLater(run: () => void, delayMs: number): void;
  log: Logger;
}

export class InboxPump {
  /** `${user}@${gateway}` → last position pushed there (undefined: start at the cursor). */
  private readonly pushedUpTo = new Map<string, number>();
  private readonly pumping = new Set<string>();
  private readonly again = new Set<string>();

  constructor(private readonly deps: InboxPumpDeps) {}

  /** The user's next push to that gateway starts at the cursor (a login, a logout, a lost link). */
  restart(userId: number, gatewayId: string): void {
    this.pushedUpTo.delete(`${userId}@${gatewayId}`);
  }

  /** Sends the user's inbox on to every gateway it is on; stored: a message just appended at that position. */
  pump(userId: number, stored?: { position: number; item: InboxItem }): void {
    if (!this.deps.pumpsFor(userId)) return;
    for (const [gatewayId, gateway] of this.deps.gateways) {
      if (!gateway.users.has(userId)) continue;
      const key = `${userId}@${gatewayId}`;
      if (stored && !this.pumping.has(key) && this.pushedUpTo.get(key) === stored.position - 1 && !gateway.link.closed) {
        gateway.link.send({ inboxPush: { userId, items: [stored.item] } });
        pushed.inc();
        this.pushedUpTo.set(key, stored.position);
        continue;
      }
      void this.pumpTo(userId, gatewayId);
    }
  }

  private async pumpTo(userId: number, gatewayId: string): Promise<void> {
    const key = `${userId}@${gatewayId}`;
    if (this.pumping.has(key)) { this.again.add(key); return; }
    this.pumping.add(key);
    try {
      do {
        this.again.delete(key);
        while (await this.pushBatch(userId, gatewayId, key));
      } while (this.again.has(key));
    } catch (err) {
      // Pi or Xiu changing leader, or a payload not there: start again from the
      // cursor shortly (the gateway drops positions it already delivered).
      this.deps.log.warn({ user: userId, gateway: gatewayId, err: (err as Error).message }, 'inbox pump failed; retrying');
      this.pushedUpTo.delete(key);
      this.deps.retryLater(() => void this.pumpTo(userId, gatewayId), PUMP_RETRY_MS);
    } finally {
      this.pumping.delete(key);
    }
  }

  /** Pushes the next batch; false when there is nothing more to push (or nobody to push it to). */
  private async pushBatch(userId: number, gatewayId: string, key: string): Promise<boolean> {
    const gateway = this.deps.gateways.get(gatewayId);
    if (!gateway || !gateway.users.has(userId) || gateway.link.closed) return false;
    let after = this.pushedUpTo.get(key);
    if (after === undefined) {
      after = await this.deps.cursor(userId);
      this.pushedUpTo.set(key, after);
    }
    const entries = await this.deps.range(userId, after, PUMP_BATCH);
    if (entries.length === 0) return false;
    const payloads = await this.deps.payloads(entries.map((e) => e.msgId));
    // Never deliver what was not stored: the items up to the first entry whose payload is missing
    // go out; that one and what follows wait for a retry, and the position stays before it.
    const items: InboxItem[] = [];
    let missing: InboxEntry | undefined;
    for (const e of entries) {
      const m = payloads.get(e.msgId.toString());
      if (!m) { missing = e; break; }
      items.push({ position: e.position, msgId: e.msgId, senderId: m.senderId, payload: m.payload, sentAtMs: m.sentAtMs });
    }
    if (items.length > 0) {
      const current = this.deps.gateways.get(gatewayId);
      if (!current?.link.send({ inboxPush: { userId, items } }) && current?.link.closed !== false) return false;
      pushed.inc(items.length);
      this.pushedUpTo.set(key, toNumber(items[items.length - 1]!.position));
    }
    if (missing) {
      missingPayloads.inc();
      throw new Error(`Xiu has no payload for message ${missing.msgId.toString()} at inbox position ${missing.position.toString()}; not delivered`);
    }
    return true;
  }
}
