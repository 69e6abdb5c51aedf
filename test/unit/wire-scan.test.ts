// The proxy's scanners against the full decoder: for generated Publish and
// PublishAck frames (and byte-level mutations of them), whatever the scanner
// accepts decodes to the same fields, and a frame re-addressed with
// withCorrelation decodes to the same message with the new correlation.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { decodePeerFrame, Long, peer } from '../../workloads/protocol/index.js';
import {
  HISTORY_REQUEST_CORRELATION_FIELD, HISTORY_REQUEST_FRAME_TAG, PUBLISH_ACK_CORRELATION_FIELD, PUBLISH_ACK_FRAME_TAG,
  encodePublishAck, framed, PUBLISH_CORRELATION_FIELD, ROOM_DELIVERY_FRAME_TAG, PUBLISH_FRAME_TAG, scanFrame, ScannedFields, withCorrelation,
} from '../../workloads/protocol/wire-scan.js';
import { messageArb, mutate, mutation, PeerFrameType, plain } from '../support/arbitraries.js';

const RUNS = 10_000;
const PublishType = PeerFrameType.lookupType('Publish');
const PublishAckType = PeerFrameType.lookupType('PublishAck');
const publishFrame = messageArb(PublishType).map((publish) => peer.PeerFrame.encode({ publish }).finish());
const ackFrame = messageArb(PublishAckType).map((publishAck) => peer.PeerFrame.encode({ publishAck }).finish());
const u32 = fc.integer({ min: 0, max: 0xffffffff });

function decodedFields(bytes: Uint8Array): ScannedFields | null {
  let frame;
  try {
    frame = decodePeerFrame(bytes);
  } catch {
    return null;
  }
  const fields = new ScannedFields();
  const message = frame.body === 'publish' ? frame.publish : frame.body === 'publishAck' ? frame.publishAck : null;
  if (!message) return null;
  const id = Long.fromValue(message.messageId);
  fields.idLow = id.low >>> 0;
  fields.idHigh = id.high >>> 0;
  fields.correlation = message.correlation;
  if (frame.body === 'publish') {
    fields.roomId = frame.publish.roomId;
    fields.payloadLength = frame.publish.payload.length;
  } else if (frame.body === 'publishAck') {
    fields.status = frame.publishAck.status >>> 0; // an enum decodes as int32
  }
  return fields;
}

const scalars = (f: ScannedFields) => ({ ...f, message: undefined });

describe('wire scan', () => {
  test.each([['Publish', publishFrame, PUBLISH_FRAME_TAG], ['PublishAck', ackFrame, PUBLISH_ACK_FRAME_TAG]] as const)(
    'a scanned %s has the fields the decoder finds, mutated or not',
    (_name, frames, tag) => {
      fc.assert(fc.property(frames, fc.array(mutation, { maxLength: 3 }), (frame, mutations) => {
        const bytes = mutate(frame, mutations);
        const scanned = new ScannedFields();
        if (!scanFrame(bytes, tag, scanned)) return;
        const decoded = decodedFields(bytes);
        expect(decoded).not.toBeNull();
        expect(scalars(scanned)).toEqual(scalars(decoded!));
      }), { numRuns: RUNS });
    },
  );

  test('every unmutated Publish and PublishAck is scanned', () => {
    fc.assert(fc.property(publishFrame, ackFrame, (publish, ack) => {
      expect(scanFrame(publish, PUBLISH_FRAME_TAG, new ScannedFields())).toBe(true);
      expect(scanFrame(ack, PUBLISH_ACK_FRAME_TAG, new ScannedFields())).toBe(true);
    }), { numRuns: 2000 });
  });

  test('withCorrelation gives the same message with the new correlation', () => {
    fc.assert(fc.property(messageArb(PublishType), messageArb(PublishAckType), u32, (publish, publishAck, correlation) => {
      const scanned = new ScannedFields();
      expect(scanFrame(peer.PeerFrame.encode({ publish }).finish(), PUBLISH_FRAME_TAG, scanned)).toBe(true);
      const forwarded = decodePeerFrame(withCorrelation(PUBLISH_FRAME_TAG, scanned.message, PUBLISH_CORRELATION_FIELD, correlation));
      if (forwarded.body !== 'publish') throw new Error(`forwarded as ${forwarded.body}`);
      expect(plain({ ...forwarded.publish, correlation: 0 })).toEqual(plain({ ...peer.Publish.decode(peer.Publish.encode(publish).finish()), correlation: 0 }));
      expect(forwarded.publish.correlation).toBe(correlation);

      expect(scanFrame(peer.PeerFrame.encode({ publishAck }).finish(), PUBLISH_ACK_FRAME_TAG, scanned)).toBe(true);
      const answered = decodePeerFrame(withCorrelation(PUBLISH_ACK_FRAME_TAG, scanned.message, PUBLISH_ACK_CORRELATION_FIELD, correlation));
      expect(answered.body === 'publishAck' && answered.publishAck.correlation).toBe(correlation);
    }), { numRuns: 2000 });
  });

  test('encodePublishAck decodes to the ack it was given', () => {
    fc.assert(fc.property(u32, u32, u32, fc.constantFrom(...Object.values(peer.PublishStatus).filter((v) => typeof v === 'number')), (low, high, correlation, status) => {
      const frame = decodePeerFrame(encodePublishAck(low, high, correlation, status));
      if (frame.body !== 'publishAck') throw new Error(`decoded as ${frame.body}`);
      expect(plain(frame.publishAck)).toEqual(plain({ messageId: Long.fromBits(low, high, true), correlation, status }));
    }), { numRuns: 2000 });
  });

  test('framed wraps encoded messages as the PeerFrame encoder would', () => {
    fc.assert(fc.property(messageArb(PeerFrameType.lookupType('RoomDelivery')), (roomDelivery) => {
      const inner = peer.RoomDelivery.encode(roomDelivery).finish();
      expect(Buffer.from(framed(ROOM_DELIVERY_FRAME_TAG, inner)).equals(Buffer.from(peer.PeerFrame.encode({ roomDelivery }).finish()))).toBe(true);
    }), { numRuns: 2000 });
  });

  test('a HistoryRequest re-addressed keeps its fields', () => {
    const request = peer.HistoryRequest.encode({ correlation: 7, roomId: 42, sequencerId: 9, afterSeq: 300 }).finish();
    const frame = decodePeerFrame(withCorrelation(HISTORY_REQUEST_FRAME_TAG, request, HISTORY_REQUEST_CORRELATION_FIELD, 0xfffffffe));
    expect(frame.body).toBe('historyRequest');
    if (frame.body !== 'historyRequest') return;
    expect(frame.historyRequest.correlation).toBe(0xfffffffe);
    expect(frame.historyRequest.roomId).toBe(42);
    expect(frame.historyRequest.sequencerId).toBe(9);
    expect(Long.fromValue(frame.historyRequest.afterSeq).toNumber()).toBe(300);
  });

  test('refuses what it does not read plainly', () => {
    const publish = peer.PeerFrame.encode({ publish: { roomId: 3, correlation: 5 } }).finish();
    const scanned = new ScannedFields();
    expect(scanFrame(publish, PUBLISH_ACK_FRAME_TAG, scanned)).toBe(false); // another frame type
    expect(scanFrame(publish.subarray(0, publish.length - 1), PUBLISH_FRAME_TAG, scanned)).toBe(false); // truncated
    expect(scanFrame(Buffer.concat([publish, Buffer.from([0x08, 0x01])]), PUBLISH_FRAME_TAG, scanned)).toBe(false); // a second field after the body
    expect(scanFrame(Uint8Array.from([PUBLISH_FRAME_TAG, 2, 0x10, 0xff]), PUBLISH_FRAME_TAG, scanned)).toBe(false); // unterminated varint
    expect(scanFrame(Uint8Array.from([PUBLISH_FRAME_TAG, 2, 0x0b, 0x00]), PUBLISH_FRAME_TAG, scanned)).toBe(false); // group wire type
  });
});
