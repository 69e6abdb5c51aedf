// The SDK's Publisher against two stand-in proxies on real sockets: one that
// takes publishes and never answers (a proxy that is being replaced), one that
// acknowledges them. Replacing the proxies must move messages in flight.
import { afterEach, expect, test } from '@jest/globals';
import { peer } from '../../workloads/protocol/index.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { PeerServer } from '../../workloads/transport/peer-server.js';

const servers: PeerServer[] = [];
afterEach(async () => { await Promise.all(servers.splice(0).map((s) => s.close())); });

async function standInProxy(acknowledge: boolean): Promise<{ address: string; received: () => number; firstPublish: Promise<void> }> {
  const server = new PeerServer({ memberId: `proxy-${acknowledge ? 'acks' : 'silent'}`, role: 'proxy' });
  servers.push(server);
  let received = 0;
  let onFirst = () => {};
  const firstPublish = new Promise<void>((resolve) => { onFirst = resolve; });
  server.on('link', (link) => link.on('frame', (frame) => {
    if (frame.body !== 'publish') return;
    received++;
    onFirst();
    if (acknowledge) link.send({ publishAck: { correlation: frame.publish.correlation, status: peer.PublishStatus.DELIVERED, messageId: frame.publish.messageId } });
  }));
  return { address: await server.listen(0, '127.0.0.1'), received: () => received, firstPublish };
}

test('a message in flight on a proxy that setProxies drops is sent again to the proxies given', async () => {
  const silent = await standInProxy(false);
  const acks = await standInProxy(true);
  const publisher = new Publisher({ proxies: [silent.address], workerId: 1, timeoutMs: 60_000 });
  try {
    const result = publisher.publish({ roomId: 3, payload: Buffer.from('hello') });
    // Only once the silent proxy holds the message is it replaced.
    await silent.firstPublish;
    publisher.setProxies([acks.address]);
    await expect(result).resolves.toMatchObject({ status: 'delivered' });
    expect(acks.received()).toBe(1);
  } finally {
    publisher.close();
  }
});
