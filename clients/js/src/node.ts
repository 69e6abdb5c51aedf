// The Node.js entry: the client over the `ws` package, decoding straight from
// Node Buffers (payloads arrive as Buffers).
import WebSocket from 'ws';
import { useWebSocket, type WebSocketConstructor } from './client.js';

useWebSocket(WebSocket as unknown as WebSocketConstructor, 'nodebuffer');

export * from './client.js';
