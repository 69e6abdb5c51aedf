// ServerFrames as WebSocket frames, encoded once and ready for any number of sockets.
import { client, type RoomDelivery } from '../protocol/index.js';
import { binaryFrame } from './websocket-frame.js';

export type ServerFrameInit = Parameters<typeof client.ServerFrame.encode>[0];

export function framed(frame: ServerFrameInit): Buffer {
  return binaryFrame(client.ServerFrame.encode(frame).finish());
}

/** A broker's RoomDelivery as the user protocol's Delivery. */
export function toDelivery(d: RoomDelivery) {
  return {
    roomId: d.roomId, messageId: d.messageId, senderId: d.senderId, roomSeq: d.roomSeq,
    sequencerId: d.sequencerId, payload: d.payload, sentAtMs: d.sentAtMs,
  };
}

export function encodeDelivery(d: RoomDelivery): Buffer {
  return framed({ delivery: toDelivery(d) });
}
