// Acceptance 7 of the data plane: a real headless Chromium (Debian's) opens the
// chat page of a local cluster as two users on two different gateways; what
// one sends, the other sees. Also: payloads from elsewhere are shown as text,
// never as HTML, and pages whose gateway dies reconnect, resume the room from
// the last sequence they saw (getting what they missed) and keep chatting.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signLogin } from '../../workloads/auth/tokens.js';
import { workerIdFor } from '../../workloads/ids/snowflake.js';
import { Publisher } from '../../workloads/sdk/publisher.js';
import { startLocalCluster, type LocalClusterHandle } from '../support/cluster.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ROOM = 7;
/** Bounds Playwright's waits so a broken run fails instead of hanging; no speed is asserted. */
const WAIT_BOUND_MS = 60_000;

let cluster: LocalClusterHandle;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** Uncaught exceptions and console errors of every page: the page must have none. */
const pageErrors: string[] = [];
let gatewayUrls: string[];
let alice: Page;
let bob: Page;

async function openPage(query: string, setup?: (page: Page) => Promise<void>, web = cluster.ready.web): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await setup?.(page);
  page.setDefaultTimeout(WAIT_BOUND_MS);
  page.on('pageerror', (err) => pageErrors.push(`${query}: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs each failed WebSocket attempt; those are expected while a gateway restarts.
    if (msg.type() === 'error' && !msg.text().includes('WebSocket connection to')) pageErrors.push(`${query}: console: ${msg.text()}`);
  });
  await page.goto(new URL(query, web).href);
  await page.locator('body[data-ready="true"]').waitFor();
  return page;
}

/** Fills in the form as a person would (by the fields' labels) and waits until the page says it is online. */
async function joinAs(page: Page, name: string, room: number): Promise<void> {
  await page.getByLabel('Display name', { exact: true }).fill(name);
  await page.getByLabel('Room', { exact: true }).fill(String(room));
  await page.getByRole('button', { name: 'Join' }).click();
  await online(page);
}

async function online(page: Page): Promise<void> {
  await page.locator('[data-testid="status"][data-state="online"]').waitFor();
}

/** The message items showing `text`, whatever their state. */
const messages = (page: Page, text: string): Locator => page.locator('[data-testid="message"]', { hasText: text });
/** A message that arrived as a Delivery from the gateway. */
const received = (page: Page, text: string): Locator =>
  page.locator('[data-testid="message"]:is([data-state="received"], [data-state="delivered"])', { hasText: text });

beforeAll(async () => {
  cluster = await startLocalCluster(['--restart-delay', '300']);
  const config = (await (await fetch(new URL('/config.json', cluster.ready.web))).json()) as { gateways: string[] };
  gatewayUrls = config.gateways;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  alice = await openPage(`/?gateway=0`);
  bob = await openPage(`/?gateway=1`);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await cluster?.stop();
});

describe('the chat page in Chromium', () => {
  test('alice and bob, on two gateways, see each other\'s messages', async () => {
    expect(gatewayUrls.length).toBeGreaterThanOrEqual(2);
    expect(gatewayUrls[0]).not.toBe(gatewayUrls[1]);

    // Bob joins first, then alice: each page is on the gateway it asked for.
    await joinAs(bob, 'bob', ROOM);
    await joinAs(alice, 'alice', ROOM);
    expect(await alice.getByTestId('gateway').getAttribute('data-index')).toBe('0');
    expect(await bob.getByTestId('gateway').getAttribute('data-index')).toBe('1');
    expect(await alice.getByTestId('gateway').textContent()).toContain(gatewayUrls[0]);
    expect(await bob.getByTestId('gateway').textContent()).toContain(gatewayUrls[1]);
    expect(await alice.getByTestId('room-title').textContent()).toBe(`Room ${ROOM}`);

    // Alice sends with Enter.
    const aliceBox = alice.getByLabel('Message', { exact: true });
    await aliceBox.fill('hello from alice');
    await aliceBox.press('Enter');

    const atBob = received(bob, 'hello from alice');
    await atBob.waitFor();
    expect(await atBob.locator('.name').textContent()).toBe('alice');
    expect(await atBob.locator('.text').textContent()).toBe('hello from alice');
    // Alice's own copy: acknowledged by the cluster (and normally delivered back to her too).
    const atAlice = alice.locator('[data-testid="message"]:is([data-state="delivered"], [data-state="sent"])', { hasText: 'hello from alice' });
    await atAlice.waitFor();
    expect(await atAlice.getAttribute('data-message-id')).toBe(await atBob.getAttribute('data-message-id'));
    expect(await aliceBox.inputValue()).toBe('');

    // Bob answers with the Send button.
    await bob.getByLabel('Message', { exact: true }).fill('hi alice, bob here');
    await bob.getByRole('button', { name: 'Send' }).click();
    const reply = received(alice, 'hi alice, bob here');
    await reply.waitFor();
    expect(await reply.locator('.name').textContent()).toBe('bob');
    await bob.locator('[data-testid="message"]:is([data-state="delivered"], [data-state="sent"])', { hasText: 'hi alice, bob here' }).waitFor();

    // Each message is shown once, and both pages show the room in one order.
    for (const page of [alice, bob]) {
      expect(await messages(page, 'hello from alice').count()).toBe(1);
      expect(await messages(page, 'hi alice, bob here').count()).toBe(1);
      const texts = await page.locator('[data-testid="message"] .text').allTextContents();
      expect(texts).toEqual(['hello from alice', 'hi alice, bob here']);
    }
    await expect(bob.getByTestId('error').isVisible()).resolves.toBe(false);
    // CHAT_SCREENSHOT=/tmp/chat-page.png saves what the pages look like, for a person to check.
    if (process.env.CHAT_SCREENSHOT) await alice.screenshot({ path: process.env.CHAT_SCREENSHOT, fullPage: true });
  });

  test('payloads from a backend are shown as text, never as HTML', async () => {
    const publisher = new Publisher({ proxies: cluster.ready.proxies, workerId: workerIdFor('client', 77) });
    try {
      const markup = '<img src=x onerror="window.injected=1"><b>bold</b>';
      await publisher.publish({ roomId: ROOM, payload: Buffer.from(markup), senderId: 0 });
      await publisher.publish({ roomId: ROOM, payload: Buffer.from(JSON.stringify({ name: '<i>mallory</i>', text: '<script>window.injected=2</script>' })), senderId: 424242 });
      await publisher.publish({ roomId: ROOM, payload: Uint8Array.from([0xff, 0xfe, 0x00, 0x80]), senderId: 424242 });
      for (const page of [alice, bob]) {
        const raw = received(page, 'bold');
        await raw.waitFor();
        expect(await raw.locator('.text').textContent()).toBe(markup);
        expect(await raw.locator('.name').textContent()).toBe('backend');
        const json = received(page, 'window.injected=2');
        await json.waitFor();
        expect(await json.locator('.name').textContent()).toBe('<i>mallory</i>');
        expect(await received(page, '4 bytes of binary data').count()).toBe(1);
        expect(await page.locator('#messages img, #messages b, #messages i, #messages script').count()).toBe(0);
        expect(await page.evaluate(() => (window as unknown as { injected?: number }).injected)).toBeUndefined();
      }
    } finally {
      publisher.close();
    }
  });

  test('pages whose gateway dies reconnect by themselves and catch up on what they missed', async () => {
    // Carol's connections pass through Playwright's WebSocket route, so the test can hold her offline
    // for a moment; alice and bob keep the browser's own WebSocket.
    let holdCarol = false;
    const carol = await openPage('/?gateway=1', async (page) => {
      await page.routeWebSocket(() => true, (ws) => {
        if (holdCarol) void ws.close({ code: 1013, reason: 'held offline by the test' });
        else ws.connectToServer();
      });
    });
    await joinAs(carol, 'carol', ROOM);
    // Carol's page learns where the room is (its sequence), which is what it resumes from.
    await bob.getByLabel('Message', { exact: true }).fill('welcome, carol');
    await bob.getByLabel('Message', { exact: true }).press('Enter');
    await received(carol, 'welcome, carol').waitFor();

    const gateway = (await cluster.processes()).find((p) => p.role === 'gateway' && p.member?.wsUrl === gatewayUrls[1]);
    expect(gateway).toBeDefined();
    holdCarol = true;
    process.kill(gateway!.pid, 'SIGKILL');
    for (const page of [bob, carol]) await page.locator('[data-testid="status"][data-state="reconnecting"]').waitFor();
    await online(bob);

    // Sent while carol is offline: bob, back already, gets it live.
    await alice.getByLabel('Message', { exact: true }).fill('sent while carol was away');
    await alice.getByLabel('Message', { exact: true }).press('Enter');
    await alice.locator('[data-testid="message"]:is([data-state="delivered"], [data-state="sent"])', { hasText: 'sent while carol was away' }).waitFor();
    await received(bob, 'sent while carol was away').waitFor();

    // Carol comes back, rejoins from the last sequence she saw, and gets it from the room's history.
    holdCarol = false;
    await online(carol);
    await received(carol, 'sent while carol was away').waitFor();
    await carol.getByTestId('notice').filter({ hasText: 'Connection lost' }).waitFor();

    await bob.getByLabel('Message', { exact: true }).fill('yes, reconnected');
    await bob.getByLabel('Message', { exact: true }).press('Enter');
    for (const page of [alice, carol]) await received(page, 'yes, reconnected').waitFor();
    for (const page of [alice, bob, carol]) {
      expect(await messages(page, 'sent while carol was away').count()).toBe(1);
      expect(await messages(page, 'yes, reconnected').count()).toBe(1);
    }
    await carol.getByTestId('notice').filter({ hasText: 'Back online' }).waitFor();
    if (process.env.CHAT_SCREENSHOT) await carol.screenshot({ path: process.env.CHAT_SCREENSHOT.replace(/(\.png)?$/, '-carol.png'), fullPage: true });
  });

  test('with login tokens required, the page logs in as the token\'s user and refuses clearly without one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'groupchat-page-auth-'));
    const key = Buffer.from(randomBytes(32).toString('hex'));
    writeFileSync(join(dir, 'key'), key);
    const secured = await startLocalCluster(['--auth-key-file', join(dir, 'key')]);
    let page: Page | undefined;
    try {
      page = await openPage('/', undefined, secured.ready.web);
      // No token: the gateway refuses, and the page says why.
      await page.getByLabel('Display name', { exact: true }).fill('carol');
      await page.getByRole('button', { name: 'Join' }).click();
      await page.getByTestId('error').filter({ hasText: 'UNAUTHENTICATED' }).waitFor();
      // Not a token at all: refused by the page itself.
      await page.getByLabel('Login token', { exact: true }).fill('not-a-token');
      await page.getByRole('button', { name: 'Join' }).click();
      await page.getByTestId('error').filter({ hasText: 'not a login token' }).waitFor();
      // A real one: the page is user 31337, and chats.
      await page.getByLabel('Login token', { exact: true }).fill(await signLogin(key, 31337, 600));
      expect(await page.getByTestId('user-id').textContent()).toContain('31337');
      await joinAs(page, 'carol', ROOM);
      const box = page.getByLabel('Message', { exact: true });
      await box.fill('signed in with a token');
      await box.press('Enter');
      await received(page, 'signed in with a token').waitFor();
    } finally {
      // Closed first: a page left open polls the stopped cluster and logs each refused connection.
      await page?.close();
      await secured.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the pages raised no errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
