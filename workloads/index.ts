// The package's entry point, `import { Publisher } from 'groupchat'`: what a
// backend needs to publish into rooms through the proxies. Users' clients use
// the client package, @groupchat/client (clients/js), instead.
export { Publisher, PublishError } from './sdk/publisher.js';
export type { PublisherOptions, PublishRequest, PublishResult, HistoryQuery } from './sdk/publisher.js';
export { workerIdFor } from './ids/snowflake.js';
export { CLIENT_PROTOCOL_VERSION, PEER_PROTOCOL_VERSION } from './protocol/index.js';
