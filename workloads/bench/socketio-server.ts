// The peer system of `groupchat bench --compare socketio`: one Socket.IO
// server process, its rooms shared with the other processes through
// @socket.io/redis-adapter. The same operations as groupchat's protocol:
// login, join a room, publish to a room (acked once broadcast), and send
// one-to-one (to the recipient's own room, which every login joins).
// Forked by the bench: `node socketio-server.js <port> <redis-url>`; reports
// `{ listening: port }` over IPC and exits when the bench goes.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const [portArg, redisUrl] = process.argv.slice(2);
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
pub.on('error', (err: Error) => process.stderr.write(`redis: ${err.message}\n`));
sub.on('error', (err: Error) => process.stderr.write(`redis: ${err.message}\n`));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = http.createServer();
const ioServer = new Server(httpServer, {
  adapter: createAdapter(pub, sub),
  // The fastest configuration Socket.IO offers: WebSocket only, no long-polling
  // upgrade dance, no per-message compression, no client bundle served.
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
});

ioServer.on('connection', (socket) => {
  socket.on('login', (userId: number, ack: () => void) => {
    socket.data.userId = userId;
    void socket.join(`u${userId}`);
    ack();
  });
  socket.on('join', (room: number, ack: () => void) => {
    void socket.join(`r${room}`);
    ack();
  });
  socket.on('publish', (room: number, msg: unknown, ack?: () => void) => {
    ioServer.to(`r${room}`).emit('m', room, msg);
    ack?.();
  });
  socket.on('direct', (toUser: number, conversation: number, msg: unknown, ack?: () => void) => {
    ioServer.to(`u${toUser}`).emit('m', conversation, msg);
    ack?.();
  });
});

httpServer.listen(Number(portArg ?? 0), '127.0.0.1', () => {
  process.send?.({ listening: (httpServer.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
