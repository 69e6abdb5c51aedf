#!/usr/bin/env node
// The `groupchat` command: `groupchat up` runs a whole local cluster;
// `groupchat <role>` runs one role (what the workload image runs).
import { Command, InvalidArgumentError } from 'commander';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOperatorConfig, runOperator } from '../../operator/main.js';
import { loadKey, signLogin } from '../auth/tokens.js';
import { startBroker } from '../broker/broker.js';
import { startGateway } from '../gateway/gateway.js';
import { startPi } from '../pi/pi.js';
import { startRelay } from '../relay/relay.js';
import { startXiu } from '../xiu/xiu.js';
import { LocalCluster } from '../local-cluster/launcher.js';
import { startProxy } from '../proxy/proxy.js';
import { startRouter } from '../router/router.js';
import { loadRoleConfig } from '../runtime/config.js';
import { runRole, type RoleContext, type RoleInstance } from '../runtime/role-process.js';

const ROLE_STARTERS: Record<string, (ctx: RoleContext) => Promise<RoleInstance>> = {
  proxy: startProxy,
  broker: startBroker,
  router: startRouter,
  gateway: startGateway,
  pi: startPi,
  xiu: startXiu,
  relay: startRelay,
};

function count(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

const program = new Command('groupchat')
  .description('Horizontally scalable group chat: run a local cluster, or one role of it')
  .showHelpAfterError();

program.command('up')
  .description('start the whole system locally as child processes; prints `ready <json>` once every role is ready')
  .option('--partitions <n>', 'broker partitions', count(1, 64), 2)
  .option('--replicas <n>', 'replicas per broker partition', count(1, 8), 2)
  .option('--proxies <n>', 'proxy processes', count(1, 16), 2)
  .option('--gateways <n>', 'gateway processes', count(1, 16), 2)
  .option('--routers <n>', 'router replicas', count(1, 8), 2)
  .option('--store-partitions <n>', 'partitions of pi (inboxes) and xiu (payloads)', count(1, 64), 1)
  .option('--store-replicas <n>', 'replicas of each pi and xiu partition (leader + followers)', count(1, 5), 2)
  .option('--relays <n>', 'relay partitions', count(1, 64), 1)
  .option('--split-threshold <n>', 'members at which a room is split into 64 virtual rooms', count(1, 10_000_000), 1000)
  .option('--host <address>', 'loopback address to listen on', '127.0.0.1')
  .option('--web-port <port>', 'port of the chat page (0: any free port)', count(0, 65535), 8080)
  .option('--log-dir <dir>', 'where the processes write their logs')
  .option('--data-dir <dir>', 'where pi and xiu keep their RocksDB data (default: <log-dir>/data)')
  .option('--restart-delay <ms>', 'wait before restarting a process that died', count(0, 60_000), 1000)
  .option('--auth-key-file <file>', 'require login tokens signed with the HS256 key in this file (see `groupchat token`)')
  .option('--peer-secret-file <file>', 'require this secret on every link between processes (publishers need it too)')
  .option('--user-rate <n>', 'messages per second a user may send (default: unlimited)', count(1, 1_000_000))
  .option('--room-rate <n>', 'messages per second a room may carry (default: unlimited)', count(1, 10_000_000))
  .option('--gateway-queue <n>', 'deliveries a broker holds for one slow gateway', count(100, 10_000_000), 10_000)
  .action(async (opts) => {
    // Worker ids give each role 128 ordinals (see ids/snowflake.ts).
    for (const [what, n] of [['--partitions × --replicas', opts.partitions * opts.replicas], ['--store-partitions × --store-replicas', opts.storePartitions * opts.storeReplicas]] as const) {
      if (n > 128) program.error(`groupchat up: ${what} is ${n}; at most 128 processes of a role`);
    }
    const logDir: string = opts.logDir ?? join(tmpdir(), `groupchat-${process.pid}`);
    const cluster = new LocalCluster({
      partitions: opts.partitions, replicas: opts.replicas, proxies: opts.proxies, gateways: opts.gateways,
      routers: opts.routers, storePartitions: opts.storePartitions, storeReplicas: opts.storeReplicas, relays: opts.relays,
      splitThreshold: opts.splitThreshold, host: opts.host, webPort: opts.webPort,
      logDir, dataDir: opts.dataDir, restartDelayMs: opts.restartDelay, authKeyFile: opts.authKeyFile, peerSecretFile: opts.peerSecretFile,
      limits: { userMessagesPerSecond: opts.userRate, roomMessagesPerSecond: opts.roomRate, gatewayQueueMessages: opts.gatewayQueue },
      entry: fileURLToPath(import.meta.url),
    });
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${signal}: stopping every process\n`);
      await cluster.stop();
      process.exit(0);
    };
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGTERM', () => void stop('SIGTERM'));
    try {
      const ready = await cluster.start();
      process.stdout.write(`ready ${JSON.stringify(ready)}\n`);
      process.stderr.write(`groupchat is running. Open ${ready.web} to chat; logs in ${ready.logDir}; Ctrl-C stops it.\n`);
    } catch (err) {
      process.stderr.write(`groupchat up failed: ${(err as Error).message}\n`);
      await cluster.stop();
      process.exit(1);
    }
  });

program.command('token')
  .description('print a login token for a user, signed with the key the gateways use')
  .requiredOption('--user <id>', 'user id the token logs in as', count(1, 0xffffffff))
  .requiredOption('--key-file <file>', 'file holding the HS256 key')
  .option('--ttl <seconds>', 'lifetime', count(1, 366 * 24 * 3600), 3600)
  .option('--rooms <ids>', 'comma-separated rooms the token may join (default: any)')
  .action(async (opts) => {
    try {
      const rooms = opts.rooms ? String(opts.rooms).split(',').map(count(1, 0xffffffff)) : undefined;
      process.stdout.write(`${await signLogin(loadKey(opts.keyFile), opts.user, opts.ttl, rooms)}\n`);
    } catch (err) {
      program.error(`groupchat token: ${(err as Error).message}`);
    }
  });

for (const [role, start] of Object.entries(ROLE_STARTERS)) {
  program.command(role)
    .description(`run one ${role} process (configuration also from GROUPCHAT_* variables)`)
    .option('--partition <n>', 'partition this process serves')
    .option('--replica <n>', 'replica index within the partition')
    .option('--ordinal <n>', 'process ordinal, for worker ids')
    .option('--host <address>', 'address to listen on')
    .option('--advertise-host <address>', 'address other members dial')
    .option('--port <port>', 'peer TCP port (0: any)')
    .option('--http-port <port>', 'metrics and health port (0: any)')
    .option('--ws-port <port>', 'WebSocket port for users (gateway)')
    .option('--data-dir <dir>', 'RocksDB folder (pi, xiu)')
    .option('--auth-key-file <file>', 'HS256 key file for login tokens (gateway)')
    .action(async (opts) => {
      try {
        await runRole(loadRoleConfig(role, opts), start);
      } catch (err) {
        process.stderr.write(`groupchat ${role}: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}

program.command('operator')
  .description('run the GroupChatCluster operator (its service account in a pod, else KUBECONFIG)')
  .option('--namespace <ns>', 'watch only this namespace (default: all; or GROUPCHAT_WATCH_NAMESPACE)')
  .option('--host <address>', 'address of the health and metrics endpoint')
  .option('--http-port <port>', 'port of the health and metrics endpoint (0: any)')
  .action(async (opts) => {
    try {
      await runOperator(loadOperatorConfig(opts));
    } catch (err) {
      process.stderr.write(`groupchat operator: ${(err as Error).message}\n`);
      process.exit(1);
    }
  });


await program.parseAsync(process.argv);
