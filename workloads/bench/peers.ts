// The peer systems `groupchat bench --compare` can run. Apart from common.ts,
// which loads bench-only packages: the CLI parses its options with this, and
// the image ships without the bench's development dependencies.
export const PEERS = ['socketio', 'centrifugo'] as const;
export type PeerName = (typeof PEERS)[number];
