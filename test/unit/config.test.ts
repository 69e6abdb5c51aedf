// Role configuration: flags, then GROUPCHAT_* variables, validated with zod.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { loadRoleConfig, memberIdFor } from '../../workloads/runtime/config.js';

const KEYS = ['GROUPCHAT_PARTITION', 'GROUPCHAT_REPLICA', 'GROUPCHAT_ORDINAL', 'GROUPCHAT_HOST', 'GROUPCHAT_ADVERTISE_HOST',
  'GROUPCHAT_PORT', 'GROUPCHAT_HTTP_PORT', 'GROUPCHAT_WS_PORT', 'GROUPCHAT_REGISTRY'];
let saved: Record<string, string | undefined>;

beforeEach(() => {
  saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
  for (const k of KEYS) delete process.env[k];
});
afterEach(() => {
  for (const k of KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('loadRoleConfig', () => {
  test('defaults', () => {
    expect(loadRoleConfig('broker', {})).toEqual({
      role: 'broker', partition: 0, replica: 0, host: '127.0.0.1', port: 0, httpPort: 0, wsPort: 0, registry: 'ipc',
    });
  });

  test('flags arrive as strings and are coerced', () => {
    const config = loadRoleConfig('gateway', { partition: '3', replica: '1', ordinal: '127', port: '7000', wsPort: '8080', advertiseHost: 'gw-0.svc' });
    expect(config).toMatchObject({ partition: 3, replica: 1, ordinal: 127, port: 7000, wsPort: 8080, advertiseHost: 'gw-0.svc' });
  });

  test('environment variables are read, and flags win over them', () => {
    process.env.GROUPCHAT_PORT = '7100';
    process.env.GROUPCHAT_PARTITION = '2';
    const config = loadRoleConfig('router', { partition: '5' });
    expect(config.port).toBe(7100);
    expect(config.partition).toBe(5);
  });

  test.each([
    ['a port that is not a number', { port: 'http' }, /invalid proxy configuration: port:/],
    ['a port above 65535', { port: '70000' }, /port:/],
    ['a negative partition', { partition: '-1' }, /partition:/],
    ['a fractional replica', { replica: '1.5' }, /replica:/],
    ['an ordinal beyond the worker id space', { ordinal: '128' }, /ordinal:/],
    ['an unknown registry back-end', { registry: 'zookeeper' }, /registry:/],
  ])('refuses %s with a message naming the field', (_what, flags, message) => {
    expect(() => loadRoleConfig('proxy', flags)).toThrow(message);
  });

  test('an unknown role is refused', () => {
    expect(() => loadRoleConfig('operator', {})).toThrow(/invalid operator configuration: role:/);
  });

  test('every problem is listed at once', () => {
    let message = '';
    try {
      loadRoleConfig('broker', { port: 'x', httpPort: '-2' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/port:/);
    expect(message).toMatch(/httpPort:/);
  });

  test('a bad value from the environment is refused too', () => {
    process.env.GROUPCHAT_HTTP_PORT = 'ninety';
    expect(() => loadRoleConfig('broker', {})).toThrow(/httpPort:/);
  });
});

describe('memberIdFor', () => {
  test('names role, partition and replica, and differs per incarnation', () => {
    const config = loadRoleConfig('broker', { partition: '1', replica: '2' });
    const a = memberIdFor(config);
    const b = memberIdFor(config);
    expect(a).toMatch(/^broker-1-2-[0-9a-f]{6}$/);
    expect(a).not.toBe(b);
  });
});
