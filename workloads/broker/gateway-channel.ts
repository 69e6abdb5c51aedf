// The broker's link to one gateway. Deliveries stay in `unacked` until the
// gateway's cumulative DeliveryAck covers them; after a reconnect they are
// sent again (the gateway drops repeats by message id), so a link that blips
// loses nothing. Only a gateway that left the registry releases them unsent.
import type { PeerIdentity, PeerLink } from '../transport/peer-link.js';
import { PeerClient } from '../transport/peer-client.js';
import { toNumber } from '../protocol/index.js';

/** Counts down the acknowledgements one fan-out waits for. */
export class Obligation {
  private remaining: number;

  constructor(count: number, private readonly onDone: () => void) {
    this.remaining = count;
    if (count === 0) onDone();
  }

  complete(): void {
    if (--this.remaining === 0) this.onDone();
  }
}

interface Unacked { body: Uint8Array; obligation: Obligation }

export class GatewayChannel {
  private readonly client: PeerClient;
  private unacked: Unacked[] = [];
  private head = 0;
  private ackedOnLink = 0;

  constructor(readonly gatewayId: string, readonly address: string, self: PeerIdentity, private readonly maxUnacked: number) {
    this.client = new PeerClient(address, self);
    this.client.on('up', (link) => this.onUp(link));
  }

  get pending(): number {
    return this.unacked.length - this.head;
  }

  /** False when the gateway is too far behind; the caller must not wait on it. */
  deliver(body: Uint8Array, obligation: Obligation): boolean {
    if (this.pending >= this.maxUnacked) return false;
    this.unacked.push({ body, obligation });
    this.client.ready?.sendEncoded(body);
    return true;
  }

  /** The gateway is gone: nothing more can reach its users. */
  close(): void {
    this.client.close();
    for (let i = this.head; i < this.unacked.length; i++) this.unacked[i]!.obligation.complete();
    this.unacked = [];
    this.head = 0;
  }

  private onUp(link: PeerLink): void {
    this.ackedOnLink = 0;
    for (let i = this.head; i < this.unacked.length; i++) link.sendEncoded(this.unacked[i]!.body);
    link.on('frame', (frame) => {
      if (frame.body !== 'deliveryAck' || !frame.deliveryAck) return;
      this.acknowledge(toNumber(frame.deliveryAck.deliveredCount));
    });
  }

  private acknowledge(count: number): void {
    let newly = count - this.ackedOnLink;
    if (newly <= 0) return;
    this.ackedOnLink = count;
    while (newly-- > 0 && this.head < this.unacked.length) {
      const entry = this.unacked[this.head]!;
      this.unacked[this.head++] = undefined as unknown as Unacked; // release the body now
      entry.obligation.complete();
    }
    if (this.head > 1024 && this.head * 2 > this.unacked.length) {
      this.unacked = this.unacked.slice(this.head);
      this.head = 0;
    }
  }
}
