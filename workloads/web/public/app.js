// The groupchat chat page: plain browser JavaScript, served as-is (no build
// step, no framework). It speaks the user protocol of docs/protocol.md —
// one binary protobuf ClientFrame/ServerFrame per WebSocket message — with
// protobufjs' light build and the descriptor served at /protocol/client.json.
// long.js is loaded first, so 64-bit message ids decode exactly.
//
// A session is: connect to a gateway, Login (user id derived from the display
// name), Join one room, then Send and receive Deliveries. The page reconnects
// with backoff and resumes the room from the last sequence it saw; messages
// it sent carry its own random 63-bit id, so resending one after a drop never
// delivers it twice.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), gateway: $('gateway'), joinForm: $('join-form'), name: $('name'), room: $('room'), token: $('token'),
    userId: $('user-id'), error: $('error'), roomTitle: $('room-title'), messages: $('messages'),
    sendForm: $('send-form'), text: $('text'), send: $('send'),
  };

  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10_000;
  const PING_EVERY_MS = 25_000;
  const PONG_TIMEOUT_MS = 10_000;
  const OPEN_TIMEOUT_MS = 10_000;
  const MAX_PAYLOAD_BYTES = 65_536;
  const MAX_NAME = 64;
  const MAX_ROOM = 0xffffffff;
  const SEEN_LIMIT = 10_000;

  const utf8 = new TextEncoder();
  const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

  /** protobuf types, loaded at start. */
  let proto = null;
  /** Gateway WebSocket URLs from /config.json. */
  let gateways = [];
  /** ?gateway=N: always use the Nth gateway; otherwise start at a random one and move on after a drop. */
  let pinnedGateway = null;
  let gatewayIndex = 0;

  /** Who the user is and which room they asked for; null before the first Join. */
  let session = null;
  /** The current connection: { ws, nextRequestId, pending, ready, pingTimer, pongTimer, closed }. */
  let conn = null;
  /** Bumped whenever a connection attempt is superseded. */
  let generation = 0;
  let attempt = 0;
  let reconnectTimer = null;

  // The room on screen.
  /** Last position seen in the room, { sequencerId, seq }: resumes after a drop, reveals gaps. */
  let position = null;
  let filling = false;
  /** Message ids shown (insertion-ordered, trimmed to SEEN_LIMIT). */
  const seen = new Set();
  /** Own messages not yet delivered back to us, by id: { id, key, room, payload, li, state, inFlight }. */
  const mine = new Map();

  // ---- small helpers -------------------------------------------------------

  /** 32-bit FNV-1a of the name's UTF-8 bytes, never 0: the same name is the same user. */
  function userIdOf(name) {
    let hash = 0x811c9dc5;
    for (const byte of utf8.encode(name)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    return hash || 1;
  }

  /**
   * The user id a login token logs in as: its `sub` claim. The page only reads
   * it (the gateway verifies the signature); null when it is not a token.
   */
  function tokenSubject(token) {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '=')));
      const sub = Number(claims.sub);
      return Number.isInteger(sub) && sub >= 1 && sub <= 0xffffffff ? sub : null;
    } catch {
      return null;
    }
  }

  /** A random 63-bit message id (docs/protocol.md §5), never 0. */
  function newMessageId() {
    const [high, low] = crypto.getRandomValues(new Uint32Array(2));
    const top = high & 0x7fffffff;
    return Long.fromBits((top === 0 && low === 0 ? 1 : low) | 0, top, true);
  }

  const idKey = (id) => Long.fromValue(id).toUnsigned().toString();
  const toNumber = (value) => (typeof value === 'number' ? value : Long.fromValue(value).toNumber());
  const codeName = (code) => proto.ErrorCode.valuesById[code] ?? `code ${code}`;

  async function fetchJson(path) {
    const res = await fetch(path, { cache: 'no-store' });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // ---- status and errors ---------------------------------------------------

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showError(context, detail) {
    const text = detail.name
      ? `${context}: ${detail.name}${detail.message ? ` — ${detail.message}` : ''}`
      : `${context}: ${detail.message ?? detail}`;
    ui.error.replaceChildren();
    const message = document.createElement('span');
    message.textContent = text;
    const dismiss = document.createElement('button');
    dismiss.type = 'button';
    dismiss.className = 'dismiss';
    dismiss.textContent = '×';
    dismiss.setAttribute('aria-label', 'Dismiss');
    dismiss.addEventListener('click', hideError);
    ui.error.append(message, dismiss);
    ui.error.dataset.code = detail.name ?? '';
    ui.error.hidden = false;
  }

  function hideError() {
    ui.error.hidden = true;
    ui.error.replaceChildren();
    delete ui.error.dataset.code;
  }

  function showGateway(index, url) {
    ui.gateway.dataset.index = String(index);
    const fallback = pinnedGateway !== null && pinnedGateway !== index
      ? ` (gateway=${pinnedGateway} is not ready; using this one meanwhile)` : '';
    ui.gateway.textContent = `gateway ${index} · ${url}${fallback}`;
  }

  function setComposer(enabled) {
    ui.text.disabled = !enabled;
    ui.send.disabled = !enabled;
    ui.text.placeholder = enabled ? 'Write a message — Enter sends' : 'Join a room to chat';
  }

  // ---- the message list ----------------------------------------------------

  const nearBottom = () => ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 48;

  function keepScrolled(wasNearBottom) {
    if (wasNearBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function notice(text) {
    const atBottom = nearBottom();
    const li = document.createElement('li');
    li.className = 'notice';
    li.dataset.testid = 'notice';
    li.textContent = text;
    ui.messages.append(li);
    keepScrolled(atBottom);
  }

  /** What a payload says: { name, text } from the page's JSON, or the best description of anything else. */
  function readPayload(bytes, senderId) {
    const fallbackName = senderId ? `user ${senderId}` : 'backend';
    let text;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      return { name: fallbackName, text: `(${bytes.length} bytes of binary data)`, raw: true };
    }
    try {
      const value = JSON.parse(text);
      if (value && typeof value === 'object' && typeof value.text === 'string') {
        const name = typeof value.name === 'string' && value.name.trim() ? value.name.slice(0, MAX_NAME) : fallbackName;
        return { name, text: value.text, raw: false };
      }
    } catch { /* not JSON: show it as text */ }
    return { name: fallbackName, text, raw: true };
  }

  function messageItem({ key, name, text, senderId, sentAtMs, own, raw }) {
    const li = document.createElement('li');
    li.className = own ? 'message mine' : 'message';
    li.dataset.testid = 'message';
    li.dataset.messageId = key;
    li.dataset.senderId = String(senderId);

    const who = document.createElement('span');
    who.className = 'name';
    who.textContent = name;
    // Names come from the payload; the sender id is what the gateway vouches for.
    if (!raw && senderId && userIdOf(name) !== senderId) {
      who.classList.add('unverified');
      who.title = `sent by user ${senderId}, not the user named "${name}"`;
    } else {
      who.title = senderId ? `user ${senderId}` : 'published by a backend';
    }
    const separator = document.createElement('span');
    separator.className = 'separator';
    separator.textContent = ': ';
    const body = document.createElement('span');
    body.className = raw ? 'text raw' : 'text';
    body.textContent = text;
    const when = new Date(sentAtMs);
    const time = document.createElement('time');
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    time.textContent = timeFormat.format(when);
    li.append(who, separator, body, time);
    if (own) {
      const state = document.createElement('span');
      state.className = 'state';
      li.append(state);
    }
    return li;
  }

  /** Places a delivered message by its room sequence: after everything ordered before it, before our unsent messages. */
  function placeDelivered(li, sequencerId, seq) {
    const atBottom = nearBottom();
    let before = null;
    for (let node = ui.messages.lastElementChild; node; node = node.previousElementSibling) {
      if (node === li) continue;
      const unsent = node.dataset.state === 'sending' || node.dataset.state === 'failed';
      const later = node.dataset.sequencerId === String(sequencerId) && Number(node.dataset.seq) > seq;
      if (!unsent && !later) break;
      before = node;
    }
    ui.messages.insertBefore(li, before);
    keepScrolled(atBottom);
  }

  const STATE_LABELS = { sending: 'sending…', sent: 'sent', delivered: 'delivered', failed: 'not sent' };

  function setMessageState(entry, state) {
    entry.state = state;
    entry.li.dataset.state = state;
    const label = entry.li.querySelector('.state');
    label.textContent = STATE_LABELS[state];
    entry.li.querySelector('.retry')?.remove();
    if (state === 'failed') {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'retry';
      retry.textContent = 'Retry';
      retry.addEventListener('click', () => {
        setMessageState(entry, 'sending');
        transmit(entry);
      });
      entry.li.append(retry);
    }
  }

  function clearRoom() {
    ui.messages.replaceChildren();
    seen.clear();
    mine.clear();
    position = null;
    filling = false;
  }

  function remember(key) {
    seen.add(key);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
  }

  function onDelivery(delivery) {
    if (!session || delivery.roomId !== session.room) return;
    const key = idKey(delivery.messageId);
    if (seen.has(key)) return; // the gateway dedups already; this is belt and braces
    remember(key);
    const seq = toNumber(delivery.roomSeq);
    const sequencerId = delivery.sequencerId;
    trackPosition(sequencerId, seq);

    const own = mine.get(key);
    let li;
    if (own) {
      mine.delete(key);
      setMessageState(own, 'delivered');
      li = own.li;
    } else {
      const { name, text, raw } = readPayload(delivery.payload, delivery.senderId);
      li = messageItem({
        key, name, text, raw, senderId: delivery.senderId, sentAtMs: toNumber(delivery.sentAtMs),
        own: delivery.senderId === session.userId,
      });
      li.dataset.state = 'received';
    }
    li.dataset.sequencerId = String(sequencerId);
    li.dataset.seq = String(seq);
    placeDelivered(li, sequencerId, seq);
  }

  /** Follows the room sequence; a jump within one sequencer means we missed messages, so ask for them. */
  function trackPosition(sequencerId, seq) {
    if (!position || position.sequencerId !== sequencerId) {
      position = { sequencerId, seq };
      return;
    }
    const gapAfter = position.seq;
    if (seq > position.seq) position.seq = seq;
    if (seq > gapAfter + 1 && conn?.ready && !filling) {
      filling = true;
      const c = conn;
      joinRoom(c, session.room, { sequencerId, seq: gapAfter }).then(({ ok, reply }) => {
        filling = false;
        if (!ok && reply.name !== 'CLOSED') showError('Recovering missed messages', reply);
      });
    }
  }

  // ---- the connection ------------------------------------------------------

  /** Sends a request; resolves with its Reply as { code, name, message } (name 'CLOSED' if the connection dropped). */
  function request(c, body) {
    return new Promise((resolve) => {
      if (c.closed) return resolve({ code: -1, name: 'CLOSED', message: 'not connected' });
      const requestId = c.nextRequestId++;
      c.pending.set(requestId, resolve);
      c.ws.send(proto.ClientFrame.encode({ requestId, ...body }).finish());
    });
  }

  async function refreshGateways() {
    try {
      const config = await fetchJson('/config.json');
      if (Array.isArray(config.gateways)) gateways = config.gateways;
    } catch { /* keep the list we have */ }
  }

  /** The gateway to use next: the pinned one when it is ready, else the next in turn. */
  function pickGateway() {
    if (pinnedGateway !== null && pinnedGateway < gateways.length) return pinnedGateway;
    return gatewayIndex % gateways.length;
  }

  async function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    const current = ++generation;
    setStatus('connecting', 'Connecting…');
    await refreshGateways();
    if (current !== generation || !session) return;
    if (gateways.length === 0) return scheduleReconnect('no gateway is ready');
    const index = pickGateway();
    const url = gateways[index];
    showGateway(index, url);
    setStatus('connecting', `Connecting to gateway ${index}…`);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return scheduleReconnect(err.message);
    }
    ws.binaryType = 'arraybuffer';
    const c = { ws, index, nextRequestId: 1, pending: new Map(), ready: false, pingTimer: null, pongTimer: null, closed: false };
    conn = c;
    // A gateway host that drops packets would leave the socket connecting for minutes.
    c.openTimer = setTimeout(() => drop(c, 'no answer from the gateway'), OPEN_TIMEOUT_MS);
    ws.addEventListener('open', () => { clearTimeout(c.openTimer); start(c); });
    ws.addEventListener('message', (event) => onFrame(c, event.data));
    ws.addEventListener('close', (event) => closed(c, `closed ${event.code}${event.reason ? ` ${event.reason}` : ''}`));
    // An 'error' event is always followed by 'close', which does the work.
  }

  /** Logs in, joins (resuming where the room left off), then flushes messages queued meanwhile. */
  async function start(c) {
    if (c !== conn) return;
    // Pings are served before Login too: a gateway that stops answering is dropped at any stage.
    startPing(c);
    setStatus('connecting', 'Logging in…');
    const login = await request(c, { login: { userId: session.userId, displayName: session.name, token: session.token } });
    if (c !== conn) return;
    if (login.code !== 0) {
      refused(c, 'Login refused', login);
      return;
    }
    const joined = await joinRoom(c, session.room, position);
    if (c !== conn) return;
    if (!joined.ok) {
      refused(c, `Joining room ${session.room} refused`, joined.reply);
      return;
    }
    c.ready = true;
    attempt = 0;
    if (session.joinedOnce) notice(`Back online, on gateway ${c.index}.`);
    session.joinedOnce = true;
    setStatus('online', `Online as ${session.name} in room ${session.room}`);
    setComposer(true);
    if (document.activeElement === document.body || ui.joinForm.contains(document.activeElement)) ui.text.focus();
    for (const entry of mine.values()) if (entry.state === 'sending') transmit(entry);
  }

  /** Join, with a resume position when we have one; HISTORY_INCOMPLETE still means joined. */
  async function joinRoom(c, room, from) {
    const join = { roomId: room };
    if (from) {
      join.resumeAfterSeq = from.seq;
      join.resumeSequencerId = from.sequencerId;
    }
    const reply = await request(c, { join });
    if (reply.name === 'HISTORY_INCOMPLETE') {
      notice('Some earlier messages of this room could not be recovered.');
      return { ok: true, reply };
    }
    return { ok: reply.code === 0, reply };
  }

  function onFrame(c, data) {
    if (c !== conn) return;
    let frame;
    try {
      if (typeof data === 'string') throw new Error('a text message');
      frame = proto.ServerFrame.decode(new Uint8Array(data));
    } catch (err) {
      showError('Protocol', { name: 'MALFORMED_FRAME', message: `the gateway sent ${err.message}, not a ServerFrame` });
      drop(c, 'undecodable frame');
      return;
    }
    if (frame.reply) {
      const resolve = c.pending.get(frame.reply.requestId);
      if (!resolve) return;
      c.pending.delete(frame.reply.requestId);
      resolve({ code: frame.reply.code, name: codeName(frame.reply.code), message: frame.reply.message });
    } else if (frame.delivery) {
      onDelivery(frame.delivery);
    } else if (frame.pong) {
      clearTimeout(c.pongTimer);
      c.pongTimer = null;
      const rtt = Date.now() - toNumber(frame.pong.clientTimeMs);
      ui.gateway.title = `round trip ${rtt} ms`;
    } else if (frame.error) {
      // A protocol violation: the gateway closes right after; we reconnect.
      showError('The gateway closed the connection', { name: codeName(frame.error.code), message: frame.error.message });
    }
    // InboxMessage (one-to-one messages) is not shown by this page.
  }

  function startPing(c) {
    const ping = () => {
      if (c.closed || c.pongTimer) return;
      c.ws.send(proto.ClientFrame.encode({ ping: { clientTimeMs: Date.now() } }).finish());
      c.pongTimer = setTimeout(() => drop(c, 'no answer to ping'), PONG_TIMEOUT_MS);
    };
    ping();
    c.pingTimer = setInterval(ping, PING_EVERY_MS);
  }

  function closed(c, why) {
    if (c.closed) return;
    const wasReady = c.ready;
    c.closed = true;
    c.ready = false;
    clearTimeout(c.openTimer);
    clearInterval(c.pingTimer);
    clearTimeout(c.pongTimer);
    for (const resolve of c.pending.values()) resolve({ code: -1, name: 'CLOSED', message: why });
    c.pending.clear();
    if (c !== conn) return;
    conn = null;
    if (!session) return;
    if (wasReady) notice(`Connection lost (${why}); reconnecting…`);
    if (!session.joinedOnce) setComposer(false);
    if (pinnedGateway === null) gatewayIndex++; // the next attempt tries another gateway
    scheduleReconnect(why);
  }

  /** Closes a connection we no longer trust; the close path reconnects. */
  function drop(c, why) {
    closed(c, why);
    try { c.ws.close(); } catch { /* already closing */ }
  }

  /** A Login or Join was refused: retry later if the gateway said so, else stop and say why. */
  function refused(c, context, reply) {
    if (reply.name === 'CLOSED') return; // the close path reconnects
    if (reply.name === 'UNAVAILABLE') {
      showError(context, reply);
      drop(c, reply.name);
    } else {
      giveUp(c, context, reply);
    }
  }

  /** Stops after a refusal that retrying would not fix; the user can press Join again. */
  function giveUp(c, context, reply) {
    conn = null;
    generation++;
    closed(c, context);
    try { c.ws.close(1000); } catch { /* already closing */ }
    showError(context, reply);
    setStatus('offline', `${context}. Press Join to try again.`);
    setComposer(false);
  }

  function scheduleReconnect(why) {
    const delay = Math.round(Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt) * (0.5 + Math.random() / 2));
    attempt++;
    setStatus('reconnecting', `Disconnected (${why}). Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  /** (Re)starts the session from scratch: a new connection, a fresh room view. */
  function restart() {
    generation++;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    attempt = 0;
    const old = conn;
    conn = null;
    if (old) {
      closed(old, 'restarting');
      try { old.ws.close(1000); } catch { /* already closing */ }
    }
    connect();
  }

  // ---- sending -------------------------------------------------------------

  async function transmit(entry) {
    const c = conn;
    if (!c?.ready || entry.inFlight) return; // queued: start() sends it after the next join
    entry.inFlight = true;
    const reply = await request(c, { send: { roomId: entry.room, messageId: entry.id, payload: entry.payload } });
    entry.inFlight = false;
    if (mine.get(entry.key) !== entry) return; // delivered back to us already, or the room changed
    if (reply.code === 0) {
      // Acknowledged: every online member has it. (Our own copy can be missing if we had only just joined.)
      setMessageState(entry, 'sent');
    } else if (reply.name !== 'CLOSED') {
      setMessageState(entry, 'failed');
      showError('Sending failed', reply);
    }
    // After a drop it stays 'sending': start() resends it with the same id, which the cluster delivers at most once.
  }

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.text.value;
    if (!session || !text.trim()) return;
    const payload = utf8.encode(JSON.stringify({ name: session.name, text }));
    if (payload.length > MAX_PAYLOAD_BYTES) {
      showError('Message too long', { message: `${payload.length} bytes; the limit is ${MAX_PAYLOAD_BYTES}` });
      return;
    }
    const id = newMessageId();
    const key = idKey(id);
    const li = messageItem({ key, name: session.name, text, raw: false, senderId: session.userId, sentAtMs: Date.now(), own: true });
    const entry = { id, key, room: session.room, payload, li, state: 'sending', inFlight: false };
    mine.set(key, entry);
    setMessageState(entry, 'sending');
    ui.messages.append(li);
    keepScrolled(true);
    ui.text.value = '';
    transmit(entry);
  });

  // ---- joining -------------------------------------------------------------

  function describeUser() {
    const name = ui.name.value.trim();
    const token = ui.token.value.trim();
    const fromToken = token ? tokenSubject(token) : null;
    ui.userId.textContent = fromToken
      ? `User id ${fromToken}, from the login token.`
      : name
        ? `User id ${userIdOf(name)} — the same name is always the same user.`
        : 'The same name is always the same user.';
  }

  ui.name.addEventListener('input', describeUser);
  ui.token.addEventListener('input', describeUser);

  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!proto) return;
    const name = ui.name.value.trim();
    const room = Number(ui.room.value);
    if (!name || name.length > MAX_NAME) {
      showError('Display name', { message: `use 1 to ${MAX_NAME} characters` });
      ui.name.focus();
      return;
    }
    if (!Number.isInteger(room) || room < 1 || room > MAX_ROOM) {
      showError('Room', { message: `a room is a whole number from 1 to ${MAX_ROOM}` });
      ui.room.focus();
      return;
    }
    const token = ui.token.value.trim();
    const tokenUser = token ? tokenSubject(token) : null;
    if (token && !tokenUser) {
      showError('Login token', { message: 'not a login token (`groupchat token --user <id>` prints one)' });
      ui.token.focus();
      return;
    }
    try {
      localStorage.setItem('groupchat.name', name);
      localStorage.setItem('groupchat.room', String(room));
    } catch { /* storage unavailable: not needed */ }
    hideError();
    ui.text.focus();
    if (session && session.name === name && session.room === room && session.token === token && (conn || reconnectTimer)) return;
    // With a token, the user is the token's subject; without, the name's hash.
    session = { name, userId: tokenUser ?? userIdOf(name), token, room, joinedOnce: false };
    clearRoom();
    setComposer(false);
    ui.roomTitle.textContent = `Room ${room}`;
    ui.roomTitle.dataset.room = String(room);
    notice(`You joined room ${room} as ${name}. Messages sent from now on appear here.`);
    restart();
  });

  // Come back at once when the network does.
  window.addEventListener('online', () => {
    if (session && !conn && reconnectTimer) connect();
  });

  // ---- start ---------------------------------------------------------------

  async function init() {
    const params = new URLSearchParams(location.search);
    try {
      const stored = localStorage.getItem('groupchat.name');
      if (stored) ui.name.value = stored;
      const storedRoom = localStorage.getItem('groupchat.room');
      if (storedRoom) ui.room.value = storedRoom;
    } catch { /* storage unavailable */ }
    if (params.has('room')) ui.room.value = params.get('room');
    describeUser();
    ui.joinForm.querySelector('button').disabled = true;
    setStatus('connecting', 'Loading…');
    try {
      const [descriptor, config] = await Promise.all([fetchJson('/protocol/client.json'), fetchJson('/config.json')]);
      const root = protobuf.Root.fromJSON(descriptor);
      proto = {
        ClientFrame: root.lookupType('groupchat.client.ClientFrame'),
        ServerFrame: root.lookupType('groupchat.client.ServerFrame'),
        ErrorCode: root.lookupEnum('groupchat.client.ErrorCode'),
      };
      gateways = Array.isArray(config.gateways) ? config.gateways : [];
    } catch (err) {
      setStatus('offline', 'The page could not load');
      showError('Loading', { message: err.message });
      return;
    }
    const wanted = params.get('gateway');
    if (wanted !== null) {
      const n = Number(wanted);
      if (Number.isInteger(n) && n >= 0) pinnedGateway = n;
      else showError('Gateway', { message: `?gateway=${wanted} is not a gateway number (0, 1, …)` });
    }
    if (pinnedGateway === null) gatewayIndex = Math.floor(Math.random() * Math.max(1, gateways.length));
    if (gateways.length) {
      const index = pickGateway();
      showGateway(index, gateways[index]);
    }
    ui.joinForm.querySelector('button').disabled = false;
    setStatus('idle', 'Not connected — pick a name and join a room');
    document.body.dataset.ready = 'true';
    if (!ui.name.value) ui.name.focus();
  }

  init();
})();
