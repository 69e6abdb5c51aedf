// The floor of WebSocket fan-out on this machine: how many deliveries per
// second any Node.js WebSocket server could reach in `groupchat bench
// --scenario fanout` if it did nothing but write pre-built frames. It tells
// whether the fan-out target in docs/benchmarks.md (5 × Socket.IO + Redis's
// deliveries/s) is reachable at all on these cores.
//
// Same shape as the bench: 4,000 `ws` users in 500 rooms of 8, users
// alternating between 2 server processes (4 of each room's members on each),
// held by 2 client processes. Each server loops over the rooms in turn and
// writes one 130-byte binary frame to the room's local members, with at most
// --window messages (× 4 local members) not yet received, as the bench's
// publisher keeps 1,000 messages in flight.
//
// Deliveries/s = frames received by the clients ÷ time from start to the last
// one. CPU per delivery counts the 4 processes (process.cpuUsage); the "rest
// of the machine" figure (/proc/stat) shows how much else used the cores.
//
//   node scripts/bench-floor.mjs [--mode raw|send|cork] [--duration 10]
//     [--chunk 32] [--window 1000] [--json FILE]
//
// --mode raw: socket.write(prebuilt frame) on the net.Socket under ws;
//        send: ws.send(payload); cork: raw, with each socket corked on its
//        first frame in an event-loop turn and all uncorked in a setImmediate.
// --chunk: messages a server writes per event-loop turn.
import { fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';

const USERS = 4000;
const ROOM_SIZE = 8;
const ROOMS = USERS / ROOM_SIZE;
const SERVERS = 2;
const CLIENTS = 2;
const PAYLOAD = Buffer.alloc(130, 0x61);
const MAX_SOCKET_BUFFER = 64 * 1024; // bytes queued in Node on one socket before the server waits for 'drain'
const CREDIT_STEP = 256; // a client reports its count to a server's window every CREDIT_STEP frames from it
const CONNECT_BATCH = 100;

/** An unmasked binary frame (RFC 6455 5.2) holding `payload`. */
function frameOf(payload) {
  const n = payload.length;
  if (n > 0xffff) throw new Error('payload too large for this frame builder');
  const header = n < 126 ? Buffer.from([0x82, n]) : Buffer.from([0x82, 126, n >> 8, n & 0xff]);
  return Buffer.concat([header, payload]);
}

const cpuMessage = () => ({ type: 'cpu', usage: process.cpuUsage() });

function runServer() {
  const rooms = Array.from({ length: ROOMS }, () => []);
  let connected = 0;
  let delivered = 0; // frames the clients have reported receiving from this server
  let resume = null;
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: false });
  wss.on('connection', (ws, req) => {
    const user = Number(new URL(req.url, 'http://x').searchParams.get('u'));
    rooms[Math.floor(user / ROOM_SIZE)].push(ws);
    if (++connected === USERS / SERVERS) process.send({ type: 'ready' });
  });
  http.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: http.address().port }));

  function start({ mode, duration, chunk, window }) {
    const frame = frameOf(PAYLOAD);
    const endAt = Date.now() + duration * 1000;
    const maxInFlight = window * (ROOM_SIZE / SERVERS);
    const corked = [];
    const uncorkAll = () => {
      for (const socket of corked) socket.uncork();
      corked.length = 0;
    };
    const write = {
      raw: (ws) => ws._socket.write(frame),
      send: (ws) => ws.send(PAYLOAD),
      cork: (ws) => {
        const socket = ws._socket;
        if (!socket.writableCorked) {
          socket.cork();
          if (corked.push(socket) === 1) setImmediate(uncorkAll);
        }
        socket.write(frame);
      },
    }[mode];
    let room = 0;
    let written = 0;
    const turn = () => {
      for (let m = 0; m < chunk; m++) {
        if (Date.now() >= endAt) return process.send({ type: 'done', written });
        if (written - delivered >= maxInFlight) return void (resume = turn);
        const members = rooms[room];
        const full = members.find((ws) => ws._socket.writableLength > MAX_SOCKET_BUFFER);
        if (full) return void full._socket.once('drain', turn);
        for (const ws of members) write(ws);
        written += members.length;
        room = (room + 1) % ROOMS;
      }
      setImmediate(turn);
    };
    turn();
  }

  process.on('message', (msg) => {
    if (msg.cmd === 'cpu') process.send(cpuMessage());
    else if (msg.cmd === 'start') start(msg);
    else if (msg.cmd === 'credit') {
      delivered = msg.delivered;
      if (resume) {
        const next = resume;
        resume = null;
        setImmediate(next);
      }
    }
  });
}

async function runClient(index, ports) {
  const received = new Array(SERVERS).fill(0);
  const reported = new Array(SERVERS).fill(0);
  let last = 0;
  const users = [];
  for (let u = 0; u < USERS; u++) if ((u >> 1) % CLIENTS === index) users.push(u);
  const connect = (user) => new Promise((resolve, reject) => {
    const server = user % SERVERS;
    const ws = new WebSocket(`ws://127.0.0.1:${ports[server]}/?u=${user}`, {
      perMessageDeflate: false, localAddress: `127.0.0.${1 + (user >> 2) % 2}`,
    });
    ws.on('message', () => {
      last = Date.now();
      if (++received[server] - reported[server] >= CREDIT_STEP) {
        reported[server] = received[server];
        process.send({ type: 'progress', server, received: received[server] });
      }
    });
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  process.on('message', (msg) => {
    if (msg.cmd === 'cpu') process.send(cpuMessage());
    else if (msg.cmd === 'count') process.send({ type: 'count', received: received.reduce((a, b) => a + b, 0), last });
  });
  for (let i = 0; i < users.length; i += CONNECT_BATCH) await Promise.all(users.slice(i, i + CONNECT_BATCH).map(connect));
  process.send({ type: 'ready' });
}

// Rejects when any child exits before the end, so that no wait outlives a crash.
let childExited;
const failure = new Promise((_, reject) => { childExited = reject; });
failure.catch(() => {});

/** Resolves with `child`'s next IPC message of `type`. */
function next(child, type) {
  return Promise.race([failure, new Promise((resolve) => {
    const onMessage = (msg) => {
      if (msg.type !== type) return;
      child.off('message', onMessage);
      resolve(msg);
    };
    child.on('message', onMessage);
  })]);
}

function ask(child, cmd, type) {
  const reply = next(child, type);
  child.send({ cmd });
  return reply;
}

function spawn(name, args) {
  const child = fork(new URL(import.meta.url).pathname, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.once('exit', (code, signal) => childExited(new Error(`${name} exited (${code ?? signal})`)));
  return child;
}

/** Busy CPU seconds of the whole machine (all cores, kernel work included), from /proc/stat; USER_HZ = 100. */
function machineBusySeconds() {
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) / 100;
}

const cpuSeconds = async (children) =>
  (await Promise.all(children.map((c) => ask(c, 'cpu', 'cpu')))).map(({ usage }) => (usage.user + usage.system) / 1e6);

async function runParent() {
  const { values: opts } = parseArgs({
    options: {
      mode: { type: 'string', default: 'raw' },
      duration: { type: 'string', default: '10' },
      chunk: { type: 'string', default: '32' },
      window: { type: 'string', default: '1000' },
      json: { type: 'string' },
    },
  });
  const mode = opts.mode;
  const duration = Number(opts.duration);
  const chunk = Number(opts.chunk);
  const window = Number(opts.window);
  if (!['raw', 'send', 'cork'].includes(mode)) throw new Error(`--mode must be raw, send or cork, not ${mode}`);
  for (const [name, v] of Object.entries({ duration, chunk, window })) {
    if (!(v > 0)) throw new Error(`--${name} must be a positive number`);
  }

  const children = [];
  const watchdog = setTimeout(() => {
    console.error('bench-floor: timed out');
    for (const c of children) c.kill('SIGKILL');
    process.exit(2);
  }, (duration + 120) * 1000);
  try {
    const servers = Array.from({ length: SERVERS }, (_, i) => spawn(`server ${i}`, ['server']));
    children.push(...servers);
    const serverReady = servers.map((s) => next(s, 'ready'));
    const ports = (await Promise.all(servers.map((s) => next(s, 'listening')))).map((m) => m.port);
    const clients = Array.from({ length: CLIENTS }, (_, i) => spawn(`client ${i}`, ['client', String(i), ports.join(',')]));
    children.push(...clients);
    await Promise.all([...serverReady, ...clients.map((c) => next(c, 'ready'))]);

    // Each client reports its count per server; a server's window is the sum over clients.
    const progress = servers.map(() => new Array(CLIENTS).fill(0));
    clients.forEach((c, ci) => c.on('message', (msg) => {
      if (msg.type !== 'progress') return;
      progress[msg.server][ci] = msg.received;
      servers[msg.server].send({ cmd: 'credit', delivered: progress[msg.server].reduce((a, b) => a + b, 0) });
    }));

    const load = loadavg()[0];
    const machine0 = machineBusySeconds();
    const serverCpu0 = await cpuSeconds(servers);
    const clientCpu0 = await cpuSeconds(clients);
    const t0 = Date.now();
    const done = servers.map((s) => next(s, 'done'));
    for (const s of servers) s.send({ cmd: 'start', mode, duration, chunk, window });
    const written = (await Promise.all(done)).reduce((n, m) => n + m.written, 0);

    // Wait for the clients to read everything written (or to stop making progress).
    let counts;
    let received = -1;
    for (let idle = 0; idle < 50;) {
      counts = await Promise.all(clients.map((c) => ask(c, 'count', 'count')));
      const now = counts.reduce((n, m) => n + m.received, 0);
      idle = now > received ? 0 : idle + 1;
      received = now;
      if (received >= written) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const serverCpu = (await cpuSeconds(servers)).reduce((n, s, i) => n + s - serverCpu0[i], 0);
    const clientCpu = (await cpuSeconds(clients)).reduce((n, s, i) => n + s - clientCpu0[i], 0);
    // What else ran on the cores meanwhile (others' work, or kernel work not charged to these processes).
    const otherCpu = Math.max(0, machineBusySeconds() - machine0 - serverCpu - clientCpu);
    const seconds = (Math.max(...counts.map((m) => m.last)) - t0) / 1000;

    const perDelivery = (cpu) => (cpu * 1e6) / received;
    const total = perDelivery(serverCpu + clientCpu);
    const result = {
      mode, durationSec: duration, chunk, window, loadAverage1m: load,
      written, received, seconds,
      deliveriesPerSec: Math.round(received / seconds),
      serverCpuSeconds: serverCpu, clientCpuSeconds: clientCpu, otherCpuSeconds: otherCpu,
      serverCpuUsPerDelivery: perDelivery(serverCpu),
      clientCpuUsPerDelivery: perDelivery(clientCpu),
      totalCpuUsPerDelivery: total,
      ceilingDeliveriesPerSec: Math.round(2e6 / total),
    };
    const int = (n) => Math.round(n).toLocaleString('en-US');
    const fixed = (n) => n.toFixed(2);
    console.log(`mode ${mode}, ${duration} s, chunk ${chunk} messages/turn, window ${window} messages/server, load average ${load.toFixed(2)} at start`);
    console.log('| figure | value |\n|---|---:|');
    for (const [label, value] of [
      ['deliveries/s', int(result.deliveriesPerSec)],
      ['frames written / received', `${int(written)} / ${int(received)}`],
      ['server CPU µs per delivery', fixed(result.serverCpuUsPerDelivery)],
      ['client CPU µs per delivery', fixed(result.clientCpuUsPerDelivery)],
      ['total CPU µs per delivery', fixed(total)],
      ['ceiling on 2 cores = 2e6 / total µs per delivery', int(result.ceilingDeliveriesPerSec)],
      ['CPU s: servers / clients / rest of the machine', [serverCpu, clientCpu, otherCpu].map(fixed).join(' / ')],
    ]) console.log(`| ${label} | ${value} |`);
    if (opts.json) writeFileSync(opts.json, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    clearTimeout(watchdog);
    await Promise.all(children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill();
      return exited;
    }));
  }
}

const [role, index, ports] = process.argv.slice(2);
if (role === 'server' || role === 'client') {
  // Never outlive the parent: exit when the IPC channel closes or a send to it fails.
  process.on('disconnect', () => process.exit(0));
  process.on('error', () => process.exit(0));
  if (role === 'server') runServer();
  else {
    runClient(Number(index), ports.split(',').map(Number)).catch((err) => {
      console.error(err);
      process.exit(1);
    });
  }
} else {
  runParent().catch((err) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
