// The replication core's messages on the peer protocol (peer.proto
// RaftMessage), both ways. What arrives is checked before the core sees it:
// the core trusts its inputs (an append's entries continue its prev_index,
// terms never exceed the message's), so a malformed peer is refused here.
import { Long, peer, type PeerFrame } from '../protocol/index.js';
import type { Entry, Message } from './raft.js';

type Wire = Extract<PeerFrame, { body: 'raft' }>['raft'];

const KINDS = ['vote', 'voteReply', 'append', 'appendReply', 'snapshot'] as const;

const n = (v: number | Long | null | undefined): number => Long.fromValue(v ?? 0).toNumber();

export function toWire(m: Message, partition: number): NonNullable<Parameters<typeof peer.RaftMessage.encode>[0]> {
  const base = { partition, kind: KINDS.indexOf(m.kind), from: m.from, to: m.to, term: m.term };
  switch (m.kind) {
    case 'vote': return { ...base, prevote: m.prevote, lastIndex: m.lastIndex, lastTerm: m.lastTerm };
    case 'voteReply': return { ...base, prevote: m.prevote, granted: m.granted };
    case 'append': return {
      ...base, prevIndex: m.prevIndex, prevTerm: m.prevTerm, commit: m.commit, stamp: m.stamp,
      entries: m.entries.map((e) => ({ index: e.index, term: e.term, data: e.data })),
    };
    case 'appendReply': return { ...base, success: m.success, match: m.match, stamp: m.stamp, lost: m.lost ?? false };
    case 'snapshot': return { ...base, stamp: m.stamp, snapshot: { index: m.snapshot.index, term: m.snapshot.term, data: m.snapshot.data } };
  }
}

/** The core's message, or a reason to refuse the frame. */
export function fromWire(w: Wire): Message | string {
  const kind = KINDS[w.kind];
  if (!kind) return `unknown raft message kind ${w.kind}`;
  if (!w.from || !w.to) return 'a raft message names its sender and recipient';
  const term = n(w.term);
  const base = { from: w.from, to: w.to, term };
  switch (kind) {
    case 'vote': return { ...base, kind, prevote: w.prevote, lastIndex: n(w.lastIndex), lastTerm: n(w.lastTerm) };
    case 'voteReply': return { ...base, kind, prevote: w.prevote, granted: w.granted };
    case 'appendReply': return { ...base, kind, success: w.success, match: n(w.match), stamp: w.stamp, lost: w.lost };
    case 'append': {
      const prevIndex = n(w.prevIndex);
      const entries: Entry[] = [];
      for (const [i, e] of w.entries.entries()) {
        const entry = { index: n(e.index), term: n(e.term), data: e.data };
        if (entry.index !== prevIndex + 1 + i) return `append entry ${entry.index} does not follow ${prevIndex + i}`;
        if (entry.term > term || entry.term < 1) return `append entry ${entry.index} has term ${entry.term} outside 1..${term}`;
        entries.push(entry);
      }
      return { ...base, kind, prevIndex, prevTerm: n(w.prevTerm), entries, commit: n(w.commit), stamp: w.stamp };
    }
    case 'snapshot': {
      if (!w.snapshot) return 'a snapshot message without its snapshot';
      const snapshot = { index: n(w.snapshot.index), term: n(w.snapshot.term), data: w.snapshot.data };
      if (snapshot.term > term) return `snapshot term ${snapshot.term} above the message's ${term}`;
      return { ...base, kind, stamp: w.stamp, snapshot };
    }
  }
}
