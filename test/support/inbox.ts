// A logged-in user that records the inbox messages pushed to it, and what a
// one-to-one test checks of them.
import { expect } from '@jest/globals';
import { toNumber } from '../../workloads/protocol/index.js';
import { ChatClient, type InboxMessage } from '../../workloads/sdk/chat-client.js';
import { eventually } from './cluster.js';

export async function loginWithInbox(url: string, userId: number): Promise<{ client: ChatClient; inbox: InboxMessage[] }> {
  const client = await ChatClient.connect(url);
  const inbox: InboxMessage[] = [];
  client.on('inbox', (m) => inbox.push(m));
  await client.login(userId, `user-${userId}`);
  return { client, inbox };
}

export const inboxText = (m: InboxMessage) => Buffer.from(m.payload).toString();

/** Every acked text arrives in the inbox exactly once, at consecutive positions from 1. */
export async function expectEachAckedOnce(inbox: InboxMessage[], acked: string[]): Promise<void> {
  await eventually(() => inbox.length >= acked.length, `${acked.length} inbox messages`);
  const received = inbox.map(inboxText);
  expect(new Set(received).size).toBe(received.length); // nothing twice
  expect(new Set(received)).toEqual(new Set(acked)); // nothing lost
  expect(inbox.map((m) => toNumber(m.position))).toEqual(received.map((_, i) => i + 1));
}
