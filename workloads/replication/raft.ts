// The replication core shared by every role that holds hard state (the broker
// partitions' room logs, pi, xiu): Raft as a pure state machine. It does no
// I/O and reads no clock: a driver feeds it time (tick), peers' messages
// (step) and proposals, and after each call takes an Output that says what
// to write to disk, what to send once that write is durable, and which
// entries became committed. Everything here is deterministic given its
// inputs and the random source, so the simulator (test/simulation) can run
// thousands of failure schedules through exactly this code.
//
// On top of the paper's algorithm:
// - pre-vote: a replica that was cut off asks first whether it could win
//   before it raises its term, so its return does not depose a healthy leader;
// - leader stickiness: a replica that heard from a leader within the
//   election timeout grants no vote, which is what makes the leader lease
//   below safe (a new leader needs a majority that has not heard from the
//   old one for a whole election timeout);
// - a leader lease: the leader may assign new positions only while a
//   majority acknowledged a message it sent less than leaseMs ago, so a
//   leader that was paused (SIGSTOP) and comes back refuses work before it
//   learns of its successor; check-quorum steps it down soon after;
// - snapshots: the driver compacts the log prefix behind an opaque snapshot
//   of its state; a follower behind that prefix receives the snapshot.

export type NodeId = string;

/** A log entry. data of length 0 is the no-op a new leader commits its term with. */
export interface Entry {
  index: number;
  term: number;
  data: Uint8Array;
}

export interface Snapshot {
  index: number;
  term: number;
  data: Uint8Array;
}

export interface HardState {
  term: number;
  votedFor: NodeId | null;
  /** Restored from a damaged log and not caught up yet: kept across restarts until it is (Restored.damaged). */
  catchingUp?: boolean;
}

export type Message =
  | { kind: 'vote'; from: NodeId; to: NodeId; term: number; prevote: boolean; lastIndex: number; lastTerm: number }
  | { kind: 'voteReply'; from: NodeId; to: NodeId; term: number; prevote: boolean; granted: boolean }
  | { kind: 'append'; from: NodeId; to: NodeId; term: number; prevIndex: number; prevTerm: number; entries: Entry[]; commit: number; stamp: number }
  /** success: match is the follower's last matching index; failure: match is a hint where to retry from. */
  | { kind: 'appendReply'; from: NodeId; to: NodeId; term: number; success: boolean; match: number; stamp: number; lost?: boolean }
  | { kind: 'snapshot'; from: NodeId; to: NodeId; term: number; snapshot: Snapshot; stamp: number };

/**
 * What the driver must do, in this order: write hardState, restore and the
 * log changes durably (truncate from truncateFrom, then append); only after
 * that write is durable send messages and apply committed. Outputs must be
 * handled in the order they were taken.
 */
export interface Output {
  hardState: HardState | null;
  /** Replace the state machine and the whole log with this snapshot (entries after it may follow in append). */
  restore: Snapshot | null;
  truncateFrom: number | null;
  append: Entry[];
  messages: Message[];
  committed: Entry[];
}

export interface RaftConfig {
  /** A follower that hears no leader for electionMs (plus a random part up to as much again) starts an election. */
  electionMs: number;
  heartbeatMs: number;
  /** How long after a majority acknowledged a message the leader may still assign positions. Below electionMs. */
  leaseMs: number;
  /** Entries per append message, and entries sent but not acknowledged per follower. */
  maxBatch: number;
  /**
   * Bytes of entry data per append message (at least one entry is sent): a
   * follower catching up gets the log in messages that fit its peer frames.
   */
  maxBatchBytes: number;
  maxInflight: number;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = { electionMs: 1000, heartbeatMs: 100, leaseMs: 700, maxBatch: 256, maxBatchBytes: 512 * 1024, maxInflight: 4096 };

/** What a replica holds when it starts: its hard state, its snapshot and the log after it. */
export interface Restored {
  hardState: HardState;
  snapshot: Snapshot;
  entries: Entry[];
  /** Entries up to here are already applied to the state machine the driver restored. */
  applied: number;
  /**
   * The driver found the log damaged and kept only what came before the
   * damage: this replica may have acknowledged entries it no longer holds,
   * so it neither votes nor campaigns until a leader's append has brought its
   * log up to that leader's commit index (else its vote could elect a replica
   * missing a committed entry).
   */
  damaged?: boolean;
}

export const EMPTY_RESTORED: Restored = {
  hardState: { term: 0, votedFor: null },
  snapshot: { index: 0, term: 0, data: new Uint8Array() },
  entries: [],
  applied: 0,
};

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

interface Progress {
  next: number;
  match: number;
  /** The stamp of the newest message this follower acknowledged. */
  ackedStamp: number;
}

export class RaftNode {
  role: Role = 'follower';
  term: number;
  votedFor: NodeId | null;
  leader: NodeId | null = null;
  commitIndex: number;
  /** The index of the current term's first entry while leader: positions are assigned only once it is applied. */
  leaderStartIndex = 0;

  private snapshot: Snapshot;
  private entries: Entry[];
  private applied: number;
  private readonly peers: NodeId[];
  private readonly progress = new Map<NodeId, Progress>();
  private votes = new Set<NodeId>();
  private now: number;
  private lastHeardFromLeader: number;
  private electionDeadline = 0;
  private lastBroadcast = 0;
  private leaderSince = 0;
  /** Restored from a damaged log and not yet caught up with a leader: no votes, no campaigns (Restored.damaged). */
  catchingUp = false;
  /** quorumStamp() without this leader: null when an acknowledgement changed it. */
  private peersQuorumStamp: number | null = null;
  private out: Output = emptyOutput();

  constructor(
    readonly id: NodeId,
    members: readonly NodeId[],
    private readonly config: RaftConfig,
    private readonly random: () => number,
    restored: Restored,
    now: number,
  ) {
    this.peers = members.filter((m) => m !== id);
    this.term = restored.hardState.term;
    this.votedFor = restored.hardState.votedFor;
    this.snapshot = restored.snapshot;
    this.entries = restored.entries.filter((e) => e.index > restored.snapshot.index);
    this.applied = Math.max(restored.applied, restored.snapshot.index);
    this.commitIndex = this.applied;
    this.now = now;
    // A replica that just started may have voted or acknowledged before it
    // stopped: it waits a whole election timeout before voting, as if it had
    // just heard from a leader, so a lease granted before the restart holds.
    this.lastHeardFromLeader = now;
    this.catchingUp = (restored.damaged ?? false) || (restored.hardState.catchingUp ?? false);
    if (restored.damaged) {
      // A term of its own, in which it votes for nobody: the leader it knew steps down when it hears
      // it, and messages sent before the damage (older terms) are refused. The leader it catches up
      // with is then one elected without it, which holds everything committed (one damaged replica).
      this.term++;
      this.votedFor = null;
      this.persistHardState(); // a restart before catching up must not forget it
    }
    this.resetElectionDeadline();
  }

  // --- queries --------------------------------------------------------------

  get lastIndex(): number {
    return this.entries.length ? this.entries[this.entries.length - 1]!.index : this.snapshot.index;
  }

  get lastTerm(): number {
    return this.entries.length ? this.entries[this.entries.length - 1]!.term : this.snapshot.term;
  }

  get firstIndex(): number {
    return this.snapshot.index + 1;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** The term of the entry at index, or -1 when it is not in the log (compacted or beyond the end). */
  termAt(index: number): number {
    if (index === this.snapshot.index) return this.snapshot.term;
    const entry = this.entryAt(index);
    return entry ? entry.term : -1;
  }

  entryAt(index: number): Entry | undefined {
    const offset = index - this.snapshot.index - 1;
    return offset >= 0 && offset < this.entries.length ? this.entries[offset] : undefined;
  }

  /** True while this replica is the leader and its lease holds: it may assign new positions. */
  hasLease(): boolean {
    return this.role === 'leader' && this.leaseExpiry() > this.now;
  }

  // --- inputs ---------------------------------------------------------------

  /** Advances the clock: heartbeats, elections, check-quorum. */
  tick(now: number): void {
    this.now = Math.max(this.now, now);
    if (this.role === 'leader') {
      if (this.peers.length > 0 && this.now - Math.max(this.quorumStamp(), this.leaderSince) > this.config.electionMs) {
        this.becomeFollower(this.term, null, 'no majority acknowledged within the election timeout');
        return;
      }
      if (this.now - this.lastBroadcast >= this.config.heartbeatMs) this.broadcastAppend(true);
    } else if (this.now >= this.electionDeadline) {
      if (this.catchingUp) this.resetElectionDeadline();
      else this.startElection(true);
    }
  }

  /** Appends data as a new entry (leader only, under its lease); returns its index, or null when this replica may not. */
  propose(data: Uint8Array): number | null {
    if (!this.hasLease() || data.length === 0) return null;
    const entry: Entry = { index: this.lastIndex + 1, term: this.term, data };
    this.entries.push(entry);
    this.out.append.push(entry);
    if (this.peers.length === 0) this.advanceCommit();
    return entry.index;
  }

  /** Sends what proposals accumulated since the last flush to every follower (call once per batch of proposals). */
  flush(): void {
    if (this.role !== 'leader') return;
    for (const peer of this.peers) this.sendAppend(peer, false);
  }

  step(message: Message): void {
    if (message.to !== this.id) return;
    if (message.kind === 'vote') return this.onVote(message);
    if (message.term > this.term) {
      if (message.kind === 'voteReply') {
        // A granted pre-vote carries the term it was asked for; anything else with a newer term means we are behind.
        if (message.prevote && message.granted) return this.onVoteReply(message);
        this.becomeFollower(message.term, null, 'a peer has a newer term');
        return;
      }
      this.becomeFollower(message.term, message.kind === 'appendReply' ? null : message.from, 'a newer leader');
    }
    switch (message.kind) {
      case 'voteReply': return this.onVoteReply(message);
      case 'append': return this.onAppend(message);
      case 'appendReply': return this.onAppendReply(message);
      case 'snapshot': return this.onSnapshot(message);
    }
  }

  /**
   * The driver compacted the state machine up to index (at most what was
   * applied) into data: the log before it is dropped.
   */
  compact(index: number, data: Uint8Array): void {
    if (index <= this.snapshot.index || index > this.applied) return;
    const term = this.termAt(index);
    this.entries = this.entries.filter((e) => e.index > index);
    this.snapshot = { index, term, data };
  }

  /** Everything the calls since the last take asked of the driver. */
  take(): Output {
    const committed: Entry[] = [];
    if (this.commitIndex > this.applied) {
      for (let i = this.applied + 1; i <= this.commitIndex; i++) committed.push(this.entryAt(i)!);
      this.applied = this.commitIndex;
    }
    const out = this.out;
    out.committed = committed;
    this.out = emptyOutput();
    return out;
  }

  // --- elections ------------------------------------------------------------

  private resetElectionDeadline(): void {
    this.electionDeadline = this.now + this.config.electionMs + Math.floor(this.random() * this.config.electionMs);
  }

  private heardFromLeaderRecently(): boolean {
    return this.now - this.lastHeardFromLeader < this.config.electionMs;
  }

  private startElection(prevote: boolean): void {
    this.resetElectionDeadline();
    if (prevote) {
      this.role = 'precandidate';
    } else {
      this.role = 'candidate';
      this.term++;
      this.votedFor = this.id;
      this.persistHardState();
    }
    this.leader = null;
    this.votes = new Set([this.id]);
    if (this.votes.size >= this.quorum()) return void (prevote ? this.startElection(false) : this.becomeLeader());
    const term = prevote ? this.term + 1 : this.term;
    for (const peer of this.peers) {
      this.send({ kind: 'vote', from: this.id, to: peer, term, prevote, lastIndex: this.lastIndex, lastTerm: this.lastTerm });
    }
  }

  private onVote(m: Extract<Message, { kind: 'vote' }>): void {
    const upToDate = m.lastTerm > this.lastTerm || (m.lastTerm === this.lastTerm && m.lastIndex >= this.lastIndex);
    // Stickiness: while a leader may be alive no vote is granted, so its lease holds.
    const leaderAlive = this.role === 'leader' || this.heardFromLeaderRecently() || this.catchingUp;
    if (m.prevote) {
      const granted = m.term > this.term && upToDate && !leaderAlive;
      this.send({ kind: 'voteReply', from: this.id, to: m.from, term: granted ? m.term : this.term, prevote: true, granted });
      return;
    }
    if (m.term < this.term || leaderAlive) {
      this.send({ kind: 'voteReply', from: this.id, to: m.from, term: this.term, prevote: false, granted: false });
      return;
    }
    if (m.term > this.term) this.becomeFollower(m.term, null, 'a candidate has a newer term');
    const granted = upToDate && (this.votedFor === null || this.votedFor === m.from);
    if (granted) {
      this.votedFor = m.from;
      this.persistHardState();
      this.resetElectionDeadline();
    }
    this.send({ kind: 'voteReply', from: this.id, to: m.from, term: this.term, prevote: false, granted });
  }

  private onVoteReply(m: Extract<Message, { kind: 'voteReply' }>): void {
    const expecting = m.prevote ? this.role === 'precandidate' && m.term === this.term + 1 : this.role === 'candidate' && m.term === this.term;
    if (!expecting || !m.granted) return;
    this.votes.add(m.from);
    if (this.votes.size < this.quorum()) return;
    if (m.prevote) this.startElection(false);
    else this.becomeLeader();
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.leaderSince = this.now;
    this.progress.clear();
    for (const peer of this.peers) this.progress.set(peer, { next: this.lastIndex + 1, match: 0, ackedStamp: -Infinity });
    this.peersQuorumStamp = null;
    // Entries of earlier terms commit only through one of this term (the paper's §5.4.2).
    const noop: Entry = { index: this.lastIndex + 1, term: this.term, data: new Uint8Array() };
    this.entries.push(noop);
    this.out.append.push(noop);
    this.leaderStartIndex = noop.index;
    if (this.peers.length === 0) this.advanceCommit();
    this.broadcastAppend(false);
  }

  private becomeFollower(term: number, leader: NodeId | null, _reason: string): void {
    if (term > this.term) {
      this.term = term;
      this.votedFor = null;
      this.persistHardState();
    }
    this.role = 'follower';
    this.leader = leader;
    this.progress.clear();
    this.leaderStartIndex = 0;
    this.resetElectionDeadline();
  }

  // --- replication: leader side -----------------------------------------------

  private broadcastAppend(heartbeat: boolean): void {
    this.lastBroadcast = this.now;
    for (const peer of this.peers) this.sendAppend(peer, heartbeat);
  }

  private sendAppend(peer: NodeId, heartbeat: boolean): void {
    const p = this.progress.get(peer)!;
    if (p.next <= this.snapshot.index) {
      this.send({ kind: 'snapshot', from: this.id, to: peer, term: this.term, snapshot: this.snapshot, stamp: this.now });
      p.next = this.snapshot.index + 1;
      return;
    }
    const room = this.config.maxInflight - (p.next - 1 - p.match);
    const most = Math.max(0, Math.min(this.lastIndex - p.next + 1, this.config.maxBatch, room));
    const entries = this.entries.slice(p.next - this.firstIndex, p.next - this.firstIndex + this.countWithin(p.next, most));
    const count = entries.length;
    if (count === 0 && !heartbeat) return;
    const prevIndex = p.next - 1;
    this.send({
      kind: 'append', from: this.id, to: peer, term: this.term, prevIndex, prevTerm: this.termAt(prevIndex),
      entries, commit: this.commitIndex, stamp: this.now,
    });
    p.next += count; // optimistic: pipelined, corrected by a rejection
  }

  /** How many of the (at most `most`) entries from `from` on fit maxBatchBytes; at least one. */
  private countWithin(from: number, most: number): number {
    let bytes = 0;
    for (let n = 0; n < most; n++) {
      bytes += this.entries[from - this.firstIndex + n]!.data.length;
      if (n > 0 && bytes > this.config.maxBatchBytes) return n;
    }
    return most;
  }

  private onAppendReply(m: Extract<Message, { kind: 'appendReply' }>): void {
    if (this.role !== 'leader' || m.term < this.term) return;
    const p = this.progress.get(m.from);
    if (!p) return;
    if (m.stamp > p.ackedStamp) {
      p.ackedStamp = m.stamp;
      this.peersQuorumStamp = null;
    }
    if (m.success) {
      p.match = Math.max(p.match, m.match);
      p.next = Math.max(p.next, p.match + 1);
      this.advanceCommit();
    } else if (m.lost) {
      // It lost entries it had acknowledged: start again from what it holds.
      p.match = Math.min(p.match, m.match);
      p.next = m.match + 1;
    } else {
      // The follower's log does not hold prevIndex with prevTerm: back up to its hint.
      p.next = Math.max(p.match + 1, Math.min(p.next - 1, m.match + 1));
    }
    this.sendAppend(m.from, false);
  }

  private advanceCommit(): void {
    const matches = [this.lastIndex, ...[...this.progress.values()].map((p) => p.match)].sort((a, b) => b - a);
    const majority = matches[this.quorum() - 1]!;
    if (majority > this.commitIndex && this.termAt(majority) === this.term) this.commitIndex = majority;
  }

  /**
   * The newest stamp a majority (this leader counting as now) acknowledged.
   * Asked on every lease check (each numbered message), so the peers' part
   * is kept until an acknowledgement or a new leadership changes it.
   */
  private quorumStamp(): number {
    if (this.quorum() === 1) return this.now;
    if (this.peersQuorumStamp === null) {
      // Stamps are this leader's own clock echoed back, never ahead of now: now is the largest.
      const stamps = [...this.progress.values()].map((p) => p.ackedStamp).sort((a, b) => b - a);
      this.peersQuorumStamp = stamps[this.quorum() - 2]!;
    }
    return this.peersQuorumStamp;
  }

  private leaseExpiry(): number {
    return this.peers.length === 0 ? Infinity : this.quorumStamp() + this.config.leaseMs;
  }

  // --- replication: follower side ---------------------------------------------

  private acceptLeader(from: NodeId): void {
    if (this.role !== 'follower') this.becomeFollower(this.term, from, 'a leader of this term');
    this.leader = from;
    this.lastHeardFromLeader = this.now;
    this.resetElectionDeadline();
  }

  private onAppend(m: Extract<Message, { kind: 'append' }>): void {
    // lost: this replica may no longer hold what it acknowledged before (Restored.damaged).
    const reply = (success: boolean, match: number) =>
      this.send({ kind: 'appendReply', from: this.id, to: m.from, term: this.term, success, match, stamp: m.stamp, lost: this.catchingUp });
    if (m.term < this.term) return reply(false, this.lastIndex);
    this.acceptLeader(m.from);
    if (m.prevIndex < this.snapshot.index) {
      // What precedes our snapshot is committed and equal everywhere: skip to it.
      const skip = m.entries.filter((e) => e.index > this.snapshot.index);
      if (skip.length === 0 || skip[0]!.index !== this.snapshot.index + 1) return reply(true, Math.min(this.snapshot.index, m.prevIndex + m.entries.length));
      return this.onAppend({ ...m, prevIndex: this.snapshot.index, prevTerm: this.snapshot.term, entries: skip });
    }
    if (m.prevIndex > this.lastIndex) return reply(false, this.lastIndex);
    const termThere = this.termAt(m.prevIndex);
    if (termThere !== m.prevTerm) {
      // Skip back over the whole run of the conflicting term, never below what is committed.
      let index = m.prevIndex;
      while (index - 1 > this.commitIndex && this.termAt(index - 1) === termThere) index--;
      return reply(false, Math.max(this.commitIndex, index - 1));
    }
    for (const entry of m.entries) {
      if (entry.index <= this.lastIndex) {
        if (this.termAt(entry.index) === entry.term) continue;
        if (entry.index <= this.commitIndex) throw new Error(`raft: leader ${m.from} conflicts with committed entry ${entry.index}`);
        this.truncate(entry.index);
      }
      this.entries.push(entry);
      this.out.append.push(entry);
    }
    const lastNew = m.prevIndex + m.entries.length;
    if (m.commit > this.commitIndex) this.commitIndex = Math.min(m.commit, lastNew);
    // Caught up once it holds the leader's log up to an entry that leader committed in its own term:
    // everything committed before that leader's election lies below it (an older commit index could
    // be stale, behind what a majority already holds).
    if (this.catchingUp && lastNew >= m.commit && this.termAt(m.commit) === m.term) {
      this.catchingUp = false;
      this.persistHardState();
    }
    reply(true, lastNew);
  }

  private onSnapshot(m: Extract<Message, { kind: 'snapshot' }>): void {
    const reply = (match: number) =>
      this.send({ kind: 'appendReply', from: this.id, to: m.from, term: this.term, success: true, match, stamp: m.stamp });
    if (m.term < this.term) {
      this.send({ kind: 'appendReply', from: this.id, to: m.from, term: this.term, success: false, match: this.lastIndex, stamp: m.stamp });
      return;
    }
    this.acceptLeader(m.from);
    const s = m.snapshot;
    if (s.index <= this.commitIndex) return reply(this.commitIndex);
    if (this.termAt(s.index) === s.term) {
      this.entries = this.entries.filter((e) => e.index > s.index);
    } else {
      this.entries = [];
    }
    // The log after the snapshot (kept when it matches) is rewritten whole by the driver.
    this.out.restore = s;
    this.out.truncateFrom = null;
    this.out.append = [...this.entries];
    this.snapshot = s;
    this.commitIndex = s.index;
    this.applied = s.index;
    reply(s.index);
  }

  private truncate(from: number): void {
    this.entries = this.entries.filter((e) => e.index < from);
    this.out.append = this.out.append.filter((e) => e.index < from);
    this.out.truncateFrom = this.out.truncateFrom === null ? from : Math.min(this.out.truncateFrom, from);
  }

  // --- plumbing ------------------------------------------------------------

  private quorum(): number {
    return Math.floor((this.peers.length + 1) / 2) + 1;
  }

  private persistHardState(): void {
    this.out.hardState = { term: this.term, votedFor: this.votedFor, ...(this.catchingUp ? { catchingUp: true } : {}) };
  }

  private send(message: Message): void {
    this.out.messages.push(message);
  }
}

function emptyOutput(): Output {
  return { hardState: null, restore: null, truncateFrom: null, append: [], messages: [], committed: [] };
}
