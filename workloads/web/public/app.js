// The groupchat chat page: plain browser JavaScript, served as-is (no build
// step, no framework). The client package's browser bundle (@groupchat/client,
// served at /client/browser.js) speaks the protocol of docs/protocol.md: it
// connects to a gateway, logs in, joins, reconnects with backoff to the next
// ready gateway and resumes the room after the last room_seq it saw, fetches
// what a gap in the sequence skipped, and resends a message cut off by a drop
// with the same id, so it is delivered once. This page is the screen around it.
import { ChatClient, newMessageId, toNumber } from '/client/browser.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), gateway: $('gateway'), joinForm: $('join-form'), name: $('name'), room: $('room'), token: $('token'),
  userId: $('user-id'), error: $('error'), roomTitle: $('room-title'), messages: $('messages'),
  sendForm: $('send-form'), text: $('text'), send: $('send'),
};

const CONNECTION = { reconnect: true, minBackoffMs: 500, maxBackoffMs: 10_000, openTimeoutMs: 10_000, keepAliveMs: 15_000, retries: 5 };
const MAX_PAYLOAD_BYTES = 65_536;
const MAX_NAME = 64;
const MAX_ROOM = 0xffffffff;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** Gateway WebSocket URLs from /config.json. */
let gateways = [];
/** ?gateway=N: always use the Nth gateway when it is ready; otherwise start at a random one and move on after a drop. */
let pinnedGateway = null;
let firstGateway = 0;

/** Who the user is and which room they asked for; null before the first Join. */
let session = null;
/** The session's client; replaced by each Join. */
let chat = null;
/** Stops the previous session's first connection attempts. */
let connecting = null;

/** Own messages not yet delivered back to us, by id: { id, key, room, payload, li, state }. */
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

/** A ChatError (or any error) as the { name, message } the error bar shows. */
function reason(err) {
  const name = err?.code ?? '';
  const message = String(err?.message ?? err);
  return { name, message: name && message.startsWith(`${name}: `) ? message.slice(name.length + 2) : message };
}

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

function showGateway(url) {
  const index = gateways.indexOf(url);
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
  mine.clear();
}

function onDelivery(delivery) {
  if (!session || delivery.roomId !== session.room) return;
  const key = delivery.messageId.toString();
  const seq = toNumber(delivery.roomSeq);
  const sequencerId = delivery.sequencerId;
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

// ---- the connection ------------------------------------------------------

async function refreshGateways() {
  try {
    const config = await fetchJson('/config.json');
    if (Array.isArray(config.gateways)) gateways = config.gateways;
  } catch { /* keep the list we have */ }
}

/**
 * The gateways to try, asked by the client before every attempt: the pinned one
 * alone while it is ready, else every ready one (from a random start, so pages
 * spread out); the client moves to the next after a drop.
 */
async function gatewayList() {
  await refreshGateways();
  if (pinnedGateway !== null && pinnedGateway < gateways.length) return [gateways[pinnedGateway]];
  const start = firstGateway % Math.max(1, gateways.length);
  return [...gateways.slice(start), ...gateways.slice(0, start)];
}

/** A new session: a new client, logged in and joined; it then keeps itself connected. */
async function restart() {
  const current = session;
  connecting?.abort();
  connecting = new AbortController();
  const old = chat;
  chat = null;
  await old?.close();
  setStatus('connecting', 'Connecting…');
  let c;
  try {
    c = await ChatClient.connect(gatewayList, { ...CONNECTION, signal: connecting.signal });
  } catch (err) {
    if (session === current) stop('Connecting failed', reason(err));
    return;
  }
  if (session !== current) return void c.close();
  chat = c;
  follow(c);
  showGateway(c.url);
  setStatus('connecting', 'Logging in…');
  try {
    await persist(c, () => c.login(session.userId, session.name, session.token));
  } catch (err) {
    if (c === chat) stop('Login refused', reason(err));
    return;
  }
  try {
    await persist(c, () => c.join(session.room));
  } catch (err) {
    if (err.code !== 'HISTORY_INCOMPLETE') {
      if (c === chat) stop(`Joining room ${session.room} refused`, reason(err));
      return;
    }
    notice('Some earlier messages of this room could not be recovered.');
  }
  if (c !== chat) return;
  online(c);
}

/** Runs op until the connection it went out on does not drop under it: after a drop, again once reconnected. */
async function persist(c, op) {
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (c !== chat || err.code !== 'CLOSED') throw err;
      await new Promise((resolve) => { c.once('reconnected', resolve); c.once('close', resolve); });
    }
  }
}

function online(c) {
  if (session.joinedOnce) notice(`Back online, on gateway ${gateways.indexOf(c.url)}.`);
  session.joinedOnce = true;
  showGateway(c.url);
  setStatus('online', `Online as ${session.name} in room ${session.room}`);
  setComposer(true);
  if (document.activeElement === document.body || ui.joinForm.contains(document.activeElement)) ui.text.focus();
}

/** The client's events, shown while c is the session's client. */
function follow(c) {
  c.on('message', (delivery) => { if (c === chat) onDelivery(delivery); });
  c.on('reconnecting', (code, why) => {
    if (c !== chat) return;
    const text = why || `closed ${code}`;
    if (session.joinedOnce) notice(`Connection lost (${text}); reconnecting…`);
    else setComposer(false);
    setStatus('reconnecting', `Disconnected (${text}). Reconnecting…`);
  });
  c.on('reconnected', () => { if (c === chat && session.joinedOnce) online(c); });
  c.on('incomplete', () => { if (c === chat) notice('Some earlier messages of this room could not be recovered.'); });
  // A protocol violation: the gateway closes right after, and the client reconnects.
  c.on('protocolError', (err) => { if (c === chat) showError('The gateway closed the connection', reason(err)); });
  // For good: logging in again was refused (e.g. the token expired).
  c.on('close', (code, why) => { if (c === chat) stop('Disconnected', { name: '', message: why || `closed ${code}` }); });
}

/** Stops after a refusal that retrying would not fix; the user can press Join again. */
function stop(context, detail) {
  const c = chat;
  chat = null;
  void c?.close();
  showError(context, detail);
  setStatus('offline', `${context}. Press Join to try again.`);
  setComposer(false);
}

// ---- sending -------------------------------------------------------------

/** Sends (or resends, with the same id) one of our messages; the client retries it across drops. */
async function transmit(entry) {
  const c = chat;
  if (!c) return;
  try {
    await c.send(entry.room, entry.payload, entry.id);
    // Acknowledged: every online member has it. (Our own copy can be missing if we had only just joined.)
    if (mine.get(entry.key) === entry) setMessageState(entry, 'sent');
  } catch (err) {
    if (mine.get(entry.key) !== entry || c !== chat) return; // delivered back already, or another session
    setMessageState(entry, 'failed');
    showError('Sending failed', reason(err));
  }
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
  const key = id.toString();
  const li = messageItem({ key, name: session.name, text, raw: false, senderId: session.userId, sentAtMs: Date.now(), own: true });
  const entry = { id, key, room: session.room, payload, li, state: 'sending' };
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
  if (session && session.name === name && session.room === room && session.token === token && chat) return;
  // With a token, the user is the token's subject; without, the name's hash.
  session = { name, userId: tokenUser ?? userIdOf(name), token, room, joinedOnce: false };
  clearRoom();
  setComposer(false);
  ui.roomTitle.textContent = `Room ${room}`;
  ui.roomTitle.dataset.room = String(room);
  notice(`You joined room ${room} as ${name}. Messages sent from now on appear here.`);
  restart();
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
    const config = await fetchJson('/config.json');
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
  if (pinnedGateway === null) firstGateway = Math.floor(Math.random() * Math.max(1, gateways.length));
  const [url] = await gatewayList();
  if (url) showGateway(url);
  ui.joinForm.querySelector('button').disabled = false;
  setStatus('idle', 'Not connected — pick a name and join a room');
  document.body.dataset.ready = 'true';
  if (!ui.name.value) ui.name.focus();
}

init();
