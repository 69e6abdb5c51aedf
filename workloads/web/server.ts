// Serves the chat page of a local cluster: the static page, the client
// package's browser bundle it runs on (@groupchat/client, copied beside it by
// the build), /config.json naming the gateways to connect to, and for clients
// written without the package the protobuf runtime (with long.js for exact
// 64-bit ids) and the client protocol descriptor (docs/protocol.md §1).
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const FILES: Record<string, string> = {
  '/': join(here, 'public', 'index.html'),
  '/app.js': join(here, 'public', 'app.js'),
  '/style.css': join(here, 'public', 'style.css'),
  '/client/browser.js': join(here, 'public', 'client', 'browser.js'),
  '/client/browser.js.map': join(here, 'public', 'client', 'browser.js.map'),
  '/vendor/protobuf.min.js': join(dirname(require.resolve('protobufjs/package.json')), 'dist', 'light', 'protobuf.min.js'),
  // Loaded before protobufjs, which then decodes fixed64 message ids as exact 64-bit Longs.
  '/vendor/long.js': require.resolve('long'),
  '/protocol/client.json': join(here, '..', 'protocol', 'generated', 'client.json'),
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json',
};

export interface WebServer {
  url: string;
  close(): Promise<void>;
}

export interface ClusterStatus {
  processes: Array<{ role: string; member: { wsUrl?: string | undefined; ready: boolean } | null }>;
}

export async function serveChatPage(host: string, port: number, status: () => ClusterStatus): Promise<WebServer> {
  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/config.json') {
      const gateways = status().processes
        .filter((p) => p.role === 'gateway' && p.member?.ready && p.member.wsUrl)
        .map((p) => p.member!.wsUrl);
      res.setHeader('content-type', TYPES['.json']!);
      res.end(JSON.stringify({ gateways }));
      return;
    }
    if (path === '/cluster.json') {
      res.setHeader('content-type', TYPES['.json']!);
      res.end(JSON.stringify(status()));
      return;
    }
    const file = FILES[path];
    if (!file || req.method !== 'GET') {
      res.statusCode = 404;
      res.end('not found\n');
      return;
    }
    try {
      const body = await readFile(file);
      res.setHeader('content-type', TYPES[extname(file)] ?? 'application/octet-stream');
      res.setHeader('cache-control', 'no-cache');
      res.end(body);
    } catch {
      res.statusCode = 500;
      res.end(`cannot read ${path}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
