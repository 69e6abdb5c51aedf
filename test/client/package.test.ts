// The client package as an application gets it: `npm pack`ed, installed from
// the tarball into an empty project, then used against a real `groupchat up`
// cluster from Node (a script of that project importing '@groupchat/client',
// and its TypeScript types checked), from Chromium (the browser bundle loaded
// by a page, over the browser's own WebSocket), and through a SIGKILL of its
// gateway: it resumes without losing or repeating a message, and its own
// sends cut off by the kill are delivered once.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { CLIENT_PROTOCOL_VERSION } from '../../workloads/protocol/index.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import type * as ClientPackage from '../../clients/js/src/node.js';
import { eventually, startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';
import { installClientPackage } from '../support/client-package.js';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let cluster: LocalClusterHandle;
let app: { dir: string; tarball: string };

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '300']);
  app = installClientPackage();
});

afterAll(async () => {
  await cluster?.stop();
  if (app) rmSync(dirname(app.dir), { recursive: true, force: true });
});

describe('@groupchat/client installed from its tarball', () => {
  test('holds the builds, the types and few dependencies', () => {
    const installed = join(app.dir, 'node_modules', '@groupchat', 'client');
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['long', 'protobufjs', 'ws']);
    for (const file of ['dist/node.js', 'dist/browser.js', 'dist/types/src/node.d.ts', 'dist/types/src/browser.d.ts', 'dist/types/generated/client.d.ts']) {
      expect(readFileSync(join(installed, file)).length).toBeGreaterThan(0);
    }
    // The browser build reaches for nothing outside itself (no Node modules, no bare imports).
    expect(readFileSync(join(installed, 'dist/browser.js'), 'utf8')).not.toMatch(/\bimport\s*[^(]*?from\s*["']|\brequire\(["']|["']node:/);
  });

  test('a Node.js script chats with it: rooms, resends, direct messages, history, room heads', async () => {
    writeFileSync(join(app.dir, 'use.mjs'), `
      import { ChatClient, PROTOCOL_VERSION } from '@groupchat/client';
      const [gw0, gw1] = JSON.parse(process.argv[2]);
      const ROOM = 51;
      const alice = await ChatClient.connect(gw0);
      const bob = await ChatClient.connect([gw1]);
      await alice.login(5101, 'alice');
      await bob.login(5102, 'bob');
      await alice.join(ROOM);
      await bob.join(ROOM);
      const got = [];
      bob.on('message', (d) => got.push({ text: Buffer.from(d.payload).toString(), seq: Number(d.roomSeq), sender: d.senderId }));
      const inbox = [];
      bob.on('inbox', (m) => inbox.push(Buffer.from(m.payload).toString()));
      const id = await alice.send(ROOM, Buffer.from('hello bob'));
      await alice.send(ROOM, Buffer.from('hello bob'), id); // the same id again: delivered once
      await alice.send(ROOM, Buffer.from('second'));
      await alice.direct(5102, Buffer.from('psst'));
      const deadline = Date.now() + 30_000;
      while (got.length < 2 || inbox.length < 1) {
        if (Date.now() > deadline) throw new Error('gave up waiting for bob: ' + JSON.stringify({ got, inbox }));
        await new Promise((r) => setTimeout(r, 20));
      }
      await bob.ackInbox();
      const page = await bob.history(ROOM, 0, 10);
      const pages = [];
      for await (const p of alice.scrollback(ROOM, 1)) pages.push(p.messages.map((d) => Buffer.from(d.payload).toString()));
      const heads = await alice.roomHeads([ROOM, 52]);
      await alice.close();
      await bob.close();
      console.log(JSON.stringify({
        protocol: PROTOCOL_VERSION, got, inbox, inboxPosition: bob.inboxPosition,
        history: page.messages.map((d) => Buffer.from(d.payload).toString()), pages,
        heads: heads.map((h) => ({ room: h.roomId, head: Number(h.headSeq) })),
      }));
    `);
    const { stdout } = await run(process.execPath, ['use.mjs', JSON.stringify(cluster.ready.gateways)], { cwd: app.dir, timeout: 90_000 });
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toEqual({
      protocol: CLIENT_PROTOCOL_VERSION, // the package speaks the gateways' version
      got: [{ text: 'hello bob', seq: 1, sender: 5101 }, { text: 'second', seq: 2, sender: 5101 }],
      inbox: ['psst'], inboxPosition: 1,
      history: ['hello bob', 'second'],
      pages: [['second'], ['hello bob']],
      heads: [{ room: 51, head: 2 }, { room: 52, head: 0 }],
    });
  });

  test('its types check an application written in TypeScript', async () => {
    writeFileSync(join(app.dir, 'check.ts'), `
      import { ChatClient, ChatError, type Delivery, type HistoryPage } from '@groupchat/client';
      export async function main(url: string): Promise<number> {
        const chat = await ChatClient.connect([url], { reconnect: true, maxBackoffMs: 2000 });
        chat.on('message', (d: Delivery) => console.log(d.roomId, d.roomSeq.toString(), d.payload.byteLength));
        chat.on('gap', (roomId: number, afterSeq: number, seq: number) => console.log(roomId, afterSeq, seq));
        await chat.login(1, 'ada');
        const id = await chat.send(7, new TextEncoder().encode('hi'));
        const page: HistoryPage = await chat.history(7);
        return page.messages.length + id.low + (new ChatError('X', 'y').code === 'X' ? 1 : 0);
      }
    `);
    writeFileSync(join(app.dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [] },
      files: ['check.ts'],
    }));
    // The repository's compiler; the application has only the package.
    await expect(run(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', app.dir], { timeout: 90_000 })).resolves.toBeDefined();
  });

  test('its browser bundle chats from a page in Chromium, over the browser\'s WebSocket', async () => {
    const bundle = readFileSync(join(app.dir, 'node_modules/@groupchat/client/dist/browser.js'));
    const requested: string[] = [];
    const server = http.createServer((req, res) => {
      requested.push(req.url ?? '');
      if (req.url === '/browser.js') {
        res.setHeader('content-type', 'text/javascript');
        res.end(bundle);
      } else if (req.url === '/') {
        res.setHeader('content-type', 'text/html');
        // The page imports the bundle as an application would and exposes one function to the test.
        res.end(`<!doctype html><link rel="icon" href="data:,"><script type="module">
          import { ChatClient } from '/browser.js';
          window.chat = async (gateways, room) => {
            const alice = await ChatClient.connect(gateways[0], { reconnect: true });
            const bob = await ChatClient.connect(gateways[1]);
            await alice.login(5201, 'alice');
            await bob.login(5202, 'bob');
            await alice.join(room);
            await bob.join(room);
            const got = [];
            const arrived = new Promise((resolve) => bob.on('message', (d) => {
              got.push({ text: new TextDecoder().decode(d.payload), seq: Number(d.roomSeq), bytes: d.payload instanceof Uint8Array });
              if (got.length === 2) resolve();
            }));
            const id = await alice.send(room, new TextEncoder().encode('from chromium'));
            await alice.send(room, new TextEncoder().encode('from chromium'), id);
            await alice.send(room, new TextEncoder().encode('again'));
            await arrived;
            const inbox = new Promise((resolve) => bob.once('inbox', (m) => resolve(new TextDecoder().decode(m.payload))));
            await alice.direct(5202, new TextEncoder().encode('psst'));
            const direct = await inbox;
            const heads = await bob.roomHeads([room]);
            const rtt = await alice.ping();
            await alice.close();
            await bob.close();
            return { got, direct, head: Number(heads[0].headSeq), id: id.toString(), rttIsNumber: typeof rtt === 'number' };
          };
          document.body.dataset.ready = 'true';
        </script>`);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(60_000);
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await page.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
      const result = await page.evaluate(([gateways]) => (window as unknown as { chat: (g: string[], room: number) => Promise<unknown> }).chat(gateways!, 53), [cluster.ready.gateways]);
      expect(result).toEqual({
        got: [{ text: 'from chromium', seq: 1, bytes: true }, { text: 'again', seq: 2, bytes: true }],
        direct: 'psst', head: 2, id: expect.stringMatching(/^[1-9]\d*$/), rttIsNumber: true,
      });
      expect(errors).toEqual([]);
      expect(requested.sort()).toEqual(['/', '/browser.js']);
    } finally {
      await browser.close();
      await new Promise((r) => server.close(r));
    }
  });

  test('through a SIGKILL of its gateway it resumes: nothing lost, nothing twice, its own sends delivered once', async () => {
    const { ChatClient } = await import(pathToFileURL(join(app.dir, 'node_modules/@groupchat/client/dist/node.js')).href) as typeof ClientPackage;
    const ROOM = 54;
    // The gateways' current URLs, as the chat page gets them: a restarted gateway listens on a new port.
    const gateways = async () => ((await (await fetch(new URL('/config.json', cluster.ready.web))).json()) as { gateways: string[] }).gateways;
    const chat = await ChatClient.connect(gateways, { reconnect: true, maxBackoffMs: 500 });
    const gatewayUrl = chat.url;
    const reference = await ChatClient.connect(cluster.ready.gateways.find((u) => u !== gatewayUrl)!);
    const got: Array<{ key: string; seq: number }> = [];
    const order: string[] = [];
    chat.on('message', (d) => got.push({ key: `${d.senderId}/${d.messageId.toString()}`, seq: Number(d.roomSeq) }));
    reference.on('message', (d) => order.push(`${d.senderId}/${d.messageId.toString()}`));
    const events: string[] = [];
    chat.on('reconnecting', () => events.push('reconnecting'));
    chat.on('reconnected', () => events.push('reconnected'));
    await chat.login(5401, 'survivor');
    await reference.login(5402, 'reference');
    await chat.join(ROOM);
    await reference.join(ROOM);

    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 41), timeoutMs: 20_000 });
    try {
      const expected: string[] = [];
      // The member's own sends run alongside: the ones cut off by the kill are resent (same id) after reconnecting.
      const ownSends = (async () => {
        for (let i = 0; i < 60; i++) {
          expected.push(`5401/${(await chat.send(ROOM, Buffer.from(`own ${i}`))).toString()}`);
        }
      })();
      for (let i = 0; i < 200; i++) {
        if (i === 60) {
          const gateway = (await cluster.processes()).find((p) => p.role === 'gateway' && p.member?.wsUrl === gatewayUrl)!;
          process.kill(gateway.pid, 'SIGKILL');
        }
        const { messageId } = await publisher.publish({ roomId: ROOM, payload: Buffer.from(`m${i}`) });
        expected.push(`0/${messageId.toString()}`);
      }
      await ownSends;
      await eventually(() => got.length >= expected.length && order.length >= expected.length, 'every message at both members');
      for (const deadline = Date.now() + 60_000; !(await cluster.processes()).some((p) => p.role === 'gateway' && p.restarts > 0 && p.member?.ready);) {
        if (Date.now() > deadline) throw new Error('gave up waiting for the launcher to restart the gateway');
        await new Promise((r) => setTimeout(r, 100));
      }

      expect(events.slice(0, 2)).toEqual(['reconnecting', 'reconnected']);
      const keys = got.map((g) => g.key);
      expect(new Set(keys).size).toBe(keys.length); // none twice
      expect([...keys].sort()).toEqual([...expected].sort()); // every one, own sends included
      expect(keys).toEqual(order); // in the room's order
      const seqs = got.map((g) => g.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i)); // room_seq without a hole
    } finally {
      // Also when an expectation failed: a client left reconnecting would keep the test process alive.
      publisher.close();
      await chat.close();
      await reference.close();
    }
  });
});
