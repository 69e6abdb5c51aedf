// A gateway that hung past its registry TTL was dropped by the brokers, and
// they released what they held for it as handed over, while its users stayed
// connected. When it is back in the registry it reads each room's log
// for what came after the last position it delivered before it left, and
// delivers that first; live deliveries of those rooms wait until then, so
// members see the room in order. The gateway's duplicate filter drops
// whatever arrives both ways.
import type { Logger } from '../observability/logger.js';
import { Counter } from 'prom-client';
import { metrics } from '../observability/http.js';
import { peer, toNumber, type Long, type RoomDelivery } from '../protocol/index.js';
import type { HistoryReply } from '../sdk/publisher.js';

const recovered = new Counter({ name: 'groupchat_gateway_catch_up_total', help: 'Room messages fetched from history after this gateway was dropped from the registry', labelNames: ['result'], registers: [metrics] });

interface Position { sequencerId: number; seq: Long }

export class CatchUp {
  private readonly positions = new Map<number, Position>();
  /** Positions when this gateway left the registry, for the rooms it had members in. */
  private leftAt: Map<number, { sequencerId: number; seq: number }> | null = null;
  /** Rooms being caught up: their live deliveries, in arrival order. */
  private readonly held = new Map<number, RoomDelivery[]>();

  constructor(
    private readonly deliver: (delivery: RoomDelivery) => void,
    /** Everything a room stored after a position (Publisher.historySince). */
    private readonly history: (roomId: number, sequencerId: number, afterSeq: number) => Promise<HistoryReply>,
    private readonly hasMembers: (roomId: number) => boolean,
    private readonly log: Logger,
  ) {}

  /** Every RoomDelivery from a broker comes through here (the hot path). */
  receive(delivery: RoomDelivery): void {
    const held = this.held.size > 0 ? this.held.get(delivery.roomId) : undefined;
    if (held) {
      held.push(delivery);
      return;
    }
    const position = this.positions.get(delivery.roomId);
    if (position) {
      position.sequencerId = delivery.sequencerId;
      position.seq = delivery.roomSeq;
    } else {
      this.positions.set(delivery.roomId, { sequencerId: delivery.sequencerId, seq: delivery.roomSeq });
    }
    this.deliver(delivery);
  }

  /** The room has no member here any more. */
  forget(roomId: number): void {
    this.positions.delete(roomId);
  }

  /** This gateway is no longer in the registry: brokers drop what they hold for it from now on. */
  left(): void {
    const at = new Map<number, { sequencerId: number; seq: number }>();
    for (const [roomId, p] of this.positions) {
      if (this.hasMembers(roomId)) at.set(roomId, { sequencerId: p.sequencerId, seq: toNumber(p.seq) });
      else this.positions.delete(roomId);
    }
    this.leftAt = at;
  }

  /** Back in the registry: fetch and deliver what each room got since this gateway left. */
  async returned(): Promise<void> {
    const since = this.leftAt;
    this.leftAt = null;
    if (!since) return;
    for (const roomId of since.keys()) this.held.set(roomId, []);
    let messages = 0;
    let incomplete = 0;
    await Promise.all([...since].map(async ([roomId, { sequencerId, seq }]) => {
      try {
        const reply = await this.history(roomId, sequencerId, seq);
        if (!reply.complete || reply.status !== peer.PublishStatus.DELIVERED) incomplete++;
        for (const delivery of reply.deliveries) {
          if (delivery.sequencerId === sequencerId && toNumber(delivery.roomSeq) <= seq) continue;
          this.deliver(delivery);
          messages++;
        }
      } finally {
        const held = this.held.get(roomId) ?? [];
        this.held.delete(roomId);
        for (const delivery of held) this.receive(delivery);
      }
    }));
    recovered.inc({ result: 'delivered' }, messages);
    if (incomplete > 0) recovered.inc({ result: 'incomplete_rooms' }, incomplete);
    this.log.warn({ rooms: since.size, messages, incompleteRooms: incomplete },
      'back in the registry after being dropped: delivered what the rooms got meanwhile');
  }
}
