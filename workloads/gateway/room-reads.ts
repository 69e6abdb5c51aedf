// A user's reads of stored room history: History (scrollback, a page before a
// position) and RoomHeads (where many rooms stand, for unread counts). Both
// are checked here, at the edge, then asked of the rooms' partition leaders
// through the gateway's publisher; the answer is one frame carrying the
// request's id, or a Reply with the reason it failed.
import { client, peer, type RoomDelivery } from '../protocol/index.js';
import { partitionOf } from '../routing/placement.js';
import type { HeadsReply, HistoryReply, HistoryQuery } from '../sdk/publisher.js';

const ErrorCode = client.ErrorCode;
export const DEFAULT_HISTORY_PAGE = 50;
export const MAX_HISTORY_PAGE = 1000;
export const MAX_HEADS_ROOMS = 1000;

type ServerFrameInit = Parameters<typeof client.ServerFrame.encode>[0];

export interface RoomReadsDeps {
  history(roomId: number, query: HistoryQuery): Promise<HistoryReply>;
  heads(roomIds: number[]): Promise<HeadsReply>;
  /** Broker partitions now (the rooms of one heads request must share one). */
  partitions(): number;
  /** Whether this session's login allows reading the room (the token's rooms claim). */
  mayRead(roomId: number): boolean;
  send(frame: ServerFrameInit): void;
  reply(code: number, message: string): void;
  toDelivery(d: RoomDelivery): NonNullable<ServerFrameInit['delivery']>;
}

/** What a broker status means to a user. */
function failure(status: number): { code: number; message: string } {
  if (status === peer.PublishStatus.REJECTED) return { code: ErrorCode.INVALID_ARGUMENT, message: 'a position beyond the room\'s head' };
  return { code: ErrorCode.UNAVAILABLE, message: `the room's history cannot be read now (${peer.PublishStatus[status] ?? status}); retry` };
}

export async function answerHistory(deps: RoomReadsDeps, requestId: number, request: { roomId: number; beforeSeq: { toNumber(): number }; limit: number }): Promise<void> {
  const { roomId, limit } = request;
  const beforeSeq = request.beforeSeq.toNumber();
  if (roomId === 0) return deps.reply(ErrorCode.INVALID_ARGUMENT, 'room_id must be between 1 and 4294967295');
  if (limit > MAX_HISTORY_PAGE) return deps.reply(ErrorCode.INVALID_ARGUMENT, `limit must be at most ${MAX_HISTORY_PAGE}`);
  if (!deps.mayRead(roomId)) return deps.reply(ErrorCode.FORBIDDEN, `the login token does not allow room ${roomId}`);
  // before_seq 0, or beyond the head: the newest messages.
  const page = await deps.history(roomId, { beforeSeq: beforeSeq || Number.MAX_SAFE_INTEGER, limit: limit || DEFAULT_HISTORY_PAGE, sequencerId: 1 });
  if (page.status !== peer.PublishStatus.DELIVERED) {
    const { code, message } = failure(page.status);
    return deps.reply(code, message);
  }
  deps.send({
    history: {
      requestId, roomId, messages: page.deliveries.map((d) => deps.toDelivery(d)),
      headSeq: page.headSeq, firstSeq: page.firstSeq, complete: page.complete,
    },
  });
}

export async function answerRoomHeads(deps: RoomReadsDeps, requestId: number, roomIds: number[]): Promise<void> {
  if (roomIds.length === 0 || roomIds.length > MAX_HEADS_ROOMS) return deps.reply(ErrorCode.INVALID_ARGUMENT, `room_ids must hold 1 to ${MAX_HEADS_ROOMS} rooms`);
  if (roomIds.includes(0)) return deps.reply(ErrorCode.INVALID_ARGUMENT, 'room_id must be between 1 and 4294967295');
  const forbidden = roomIds.find((r) => !deps.mayRead(r));
  if (forbidden !== undefined) return deps.reply(ErrorCode.FORBIDDEN, `the login token does not allow room ${forbidden}`);
  const byPartition = new Map<number, number[]>();
  const partitions = deps.partitions();
  for (const roomId of new Set(roomIds)) {
    const p = partitionOf(roomId, partitions);
    byPartition.set(p, [...(byPartition.get(p) ?? []), roomId]);
  }
  const replies = await Promise.all([...byPartition.values()].map((rooms) => deps.heads(rooms)));
  const failed = replies.find((r) => r.status !== peer.PublishStatus.DELIVERED);
  if (failed) {
    const { code, message } = failure(failed.status);
    return deps.reply(code, message);
  }
  const heads = new Map(replies.flatMap((r) => r.heads).map((h) => [h.roomId, h]));
  deps.send({ roomHeads: { requestId, heads: roomIds.map((roomId) => heads.get(roomId)!) } });
}
