// Every frame a connection gets in one event-loop turn leaves in one write
// at the end of the turn. Nagle's rule at event-loop scale: a gateway that
// flushed less than coalesceMs ago is busy, so it waits out that time and a
// connection's frames of several turns share a write; an idle one writes at once.
import type { Session } from './session.js';

export interface OutboxDeps {
  now(): number;
  /** Runs at the end of this turn (setImmediate). */
  soon(run: () => void): void;
  /** Runs after delayMs (setTimeout). */
  after(run: () => void, delayMs: number): void;
  /** A connection with more than maxUnsentBytes not yet sent: it is not reading. */
  overflow(session: Session, unsentBytes: number): void;
}

export class Outboxes {
  private readonly flushing: Session[] = [];
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  private readonly flushAll = () => {
    this.lastFlushAt = this.deps.now();
    for (const session of this.flushing.splice(0)) this.flush(session);
  };

  constructor(private readonly deps: OutboxDeps, readonly maxUnsentBytes: number, private readonly coalesceMs = 1) {}

  /** Queues an already framed ServerFrame (the same bytes may go to many sessions). */
  send(session: Session, frame: Buffer): void {
    if (session.outbox.length === 0) {
      if (this.flushing.length === 0) {
        if (this.deps.now() - this.lastFlushAt >= this.coalesceMs) this.deps.soon(this.flushAll);
        else this.deps.after(this.flushAll, this.coalesceMs);
      }
      this.flushing.push(session);
    }
    session.outbox.push(frame);
  }

  /** Writes what the session has queued now (before a close, so it goes out first). */
  flush(session: Session): void {
    const frames = session.outbox;
    if (frames.length === 0) return;
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    frames.length = 0;
    const connection = session.connection;
    if (!connection.open) return;
    if (connection.unsentBytes > this.maxUnsentBytes) return this.deps.overflow(session, connection.unsentBytes);
    connection.writeFramed(data);
  }
}
