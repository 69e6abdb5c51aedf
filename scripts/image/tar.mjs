// A deterministic tar writer (POSIX ustar, with pax records for long names):
// the same entries give the same bytes, whatever the files' owners, times or
// the order a directory lists them in. Image layers and the image archives
// are written with it.
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const BLOCK = 512;

/**
 * @typedef {{ path: string, type: 'file' | 'dir' | 'symlink', mode: number, uid?: number, gid?: number,
 *             data?: Buffer, target?: string }} Entry
 */

function octal(value, width) {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header({ name, mode, uid, gid, size, mtime, type, linkname }) {
  const block = Buffer.alloc(BLOCK);
  const put = (text, offset, width) => block.write(text, offset, width, 'utf8');
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(uid, 8), 108, 8);
  put(octal(gid, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  put(' '.repeat(8), 148, 8);
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return block;
}

function padding(size) {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A pax record: "<length> <key>=<value>\n", where length counts the whole record. */
function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let length = bytes + String(bytes).length;
  if (String(length).length !== String(bytes).length) length = bytes + String(length).length;
  return `${length}${body}`;
}

/**
 * The archive's bytes: entries in the order given, every owner and time the
 * same (uid/gid 0 unless an entry says otherwise, mtime `mtime`).
 * @param {Entry[]} entries
 * @param {number} mtime seconds since the epoch
 */
export function tarBytes(entries, mtime) {
  const chunks = [];
  for (const e of entries) {
    const name = e.type === 'dir' ? `${e.path}/` : e.path;
    const linkname = e.target ?? '';
    const size = e.type === 'file' ? e.data.length : 0;
    const pax = [];
    if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
    if (Buffer.byteLength(linkname) > 100) pax.push(paxRecord('linkpath', linkname));
    if (pax.length) {
      const records = Buffer.from(pax.join(''));
      chunks.push(header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: records.length, mtime, type: 'x', linkname: '' }),
        records, padding(records.length));
    }
    const type = e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2';
    chunks.push(header({
      name: name.slice(0, 100), mode: e.mode, uid: e.uid ?? 0, gid: e.gid ?? 0, size, mtime, type, linkname: linkname.slice(0, 100),
    }));
    if (size) chunks.push(e.data, padding(size));
  }
  chunks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(chunks);
}

/**
 * Every file, directory and symlink under `root`, depth first with each
 * directory's names sorted, as entries named relative to it. Modes are
 * normalised (0755 for directories and executables, 0644 for other files)
 * unless `modes` names the path; `owners` gives a path another uid/gid.
 * @param {string} root
 * @param {{ modes?: Record<string, number>, owners?: Record<string, number> }} [options]
 * @returns {Entry[]}
 */
export function treeEntries(root, { modes = {}, owners = {} } = {}) {
  const entries = [];
  const walk = (dir, prefix) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const path = prefix ? `${prefix}/${name}` : name;
      const stat = lstatSync(full);
      const owner = owners[path] !== undefined ? { uid: owners[path], gid: owners[path] } : {};
      if (stat.isSymbolicLink()) {
        entries.push({ path, type: 'symlink', mode: 0o777, target: readlinkSync(full) });
      } else if (stat.isDirectory()) {
        entries.push({ path, type: 'dir', mode: modes[path] ?? 0o755, ...owner });
        walk(full, path);
      } else if (stat.isFile()) {
        entries.push({ path, type: 'file', mode: modes[path] ?? (stat.mode & 0o111 ? 0o755 : 0o644), data: readFileSync(full), ...owner });
      } else {
        throw new Error(`${full}: only files, directories and symlinks belong in an image layer`);
      }
    }
  };
  walk(root, '');
  return entries;
}
