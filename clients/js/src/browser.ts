// The browser entry: the client over the platform's WebSocket. Nothing here or
// in what it imports may need Node (the build bundles it for the browser).
import { useWebSocket, type WebSocketConstructor } from './client.js';

useWebSocket(globalThis.WebSocket as unknown as WebSocketConstructor, 'arraybuffer');

export * from './client.js';
