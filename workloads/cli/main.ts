#!/usr/bin/env node
// The `groupchat` command: `groupchat up` runs a whole local cluster;
// `groupchat <role>` runs one role (what the workload image runs).
import { Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerBenchCommand } from '../bench/command.js';
import { loadKey, signLogin } from '../auth/tokens.js';
import { CLIENT_PROTOCOL_VERSION, PEER_PROTOCOL_VERSION } from '../protocol/index.js';
import { LocalCluster } from '../local-cluster/launcher.js';
import { loadRoleConfig } from '../runtime/config.js';
import { runRole, type RoleContext, type RoleInstance } from '../runtime/role-process.js';

type Starter = (ctx: RoleContext) => Promise<RoleInstance>;

/** Each role's code is loaded only by the process that runs it. */
const ROLE_STARTERS: Record<string, () => Promise<Starter>> = {
  proxy: async () => (await import('../proxy/proxy.js')).startProxy,
  broker: async () => (await import('../broker/broker.js')).startBroker,
  router: async () => (await import('../router/router.js')).startRouter,
  gateway: async () => (await import('../gateway/gateway.js')).startGateway,
  pi: async () => (await import('../pi/pi.js')).startPi,
  xiu: async () => (await import('../xiu/xiu.js')).startXiu,
  relay: async () => (await import('../relay/relay.js')).startRelay,
};

function count(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** The package's version: its package.json is three levels up from dist/workloads/cli, in a checkout, an install and the image. */
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command('groupchat')
  .description('Horizontally scalable group chat: run a local cluster, or one role of it')
  .version(`groupchat ${VERSION}`, '-V, --version', 'print the version')
  .showHelpAfterError()
  .addHelpText('after', `
Each command has its own help: groupchat <command> --help.
Documentation: README.md; docs/client.md (clients and backends), docs/protocol.md (the user protocol),
docs/operator.md (Kubernetes).`);

program.command('version')
  .description('print the version of groupchat and of the protocols it speaks')
  .action(() => {
    process.stdout.write(`groupchat ${VERSION}\nuser protocol ${CLIENT_PROTOCOL_VERSION} (docs/protocol.md)\npeer protocol ${PEER_PROTOCOL_VERSION}\n`);
  });

program.command('up')
  .description('start the whole system locally as child processes; prints `ready <json>` once every role is ready; SIGUSR2 doubles the broker partitions as the operator would (prints `doubled <json>`)')
  .option('--partitions <n>', 'broker partitions (on 2 cores 1 costs less CPU and memory: docs/benchmarks.md)', count(1, 64), 2)
  .option('--replicas <n>', 'replicas per broker partition (a majority must be up to commit: 3 survive one failure)', count(1, 8), 3)
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
  .option('--data-dir <dir>', 'where brokers, pi and xiu keep their RocksDB data (default: <log-dir>/data)')
  .option('--restart-delay <ms>', 'wait before restarting a process that died', count(0, 60_000), 1000)
  .option('--auth-key-file <file>', 'require login tokens signed with the HS256 key in this file (see `groupchat token`)')
  .option('--peer-secret-file <file>', 'require this secret on every link between processes (publishers need it too)')
  .option('--user-rate <n>', 'messages per second a user may send (default: unlimited)', count(1, 1_000_000))
  .option('--room-rate <n>', 'messages per second a room may carry (default: unlimited)', count(1, 10_000_000))
  .option('--gateway-queue <n>', 'deliveries a broker holds for one slow gateway', count(100, 10_000_000), 10_000)
  .option('--history-messages <n>', 'room history: the newest messages kept per room', count(1, 1_000_000_000), 10_000)
  .option('--history-age <seconds>', 'room history: messages older than this are removed (0: no age limit)', count(0, 10 * 365 * 86_400), 7 * 86_400)
  .option('--history-bytes <n>', 'room history: bytes each broker partition\'s log may hold', count(1024 * 1024, Number.MAX_SAFE_INTEGER), 256 * 1024 * 1024)
  .option('--fsync <policy>', 'when a room log write is durable: always (fsync before the ack) or batch (fsync every --fsync-interval ms)', 'always')
  .option('--fsync-interval <ms>', 'with --fsync batch: the longest a write waits for its fsync', count(1, 1000), 10)
  .action(async (opts) => {
    if (opts.fsync !== 'always' && opts.fsync !== 'batch') program.error(`groupchat up: --fsync is always or batch, not ${opts.fsync}`);
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
      history: {
        messagesPerRoom: opts.historyMessages, maxAgeSeconds: opts.historyAge, bytesPerPartition: opts.historyBytes,
        fsync: opts.fsync, fsyncIntervalMs: opts.fsyncInterval,
      },
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
    // A partition doubling, as the operator would run it on Kubernetes: `kill -USR2 <pid of groupchat up>`.
    process.on('SIGUSR2', () => {
      process.stderr.write('SIGUSR2: doubling the broker partitions\n');
      cluster.doubleBrokers().then(
        (topology) => process.stdout.write(`doubled ${JSON.stringify({ epoch: topology.epoch, brokerPartitions: topology.roles.broker.partitions })}\n`),
        (err: Error) => process.stderr.write(`doubling failed: ${err.message}\n`),
      );
    });
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

for (const [role, load] of Object.entries(ROLE_STARTERS)) {
  program.command(role)
    .description(`run one ${role} process (configuration also from GROUPCHAT_* variables)`)
    .option('--partition <n>', 'partition this process serves (GROUPCHAT_PARTITION; default 0)')
    .option('--replica <n>', 'replica index within the partition (GROUPCHAT_REPLICA; default 0)')
    .option('--ordinal <n>', 'process ordinal 0-127, for message worker ids (GROUPCHAT_ORDINAL; default 0)')
    .option('--host <address>', 'address to listen on (GROUPCHAT_HOST; default 127.0.0.1)')
    .option('--advertise-host <address>', 'address other members dial (GROUPCHAT_ADVERTISE_HOST; default: the host)')
    .option('--port <port>', 'peer TCP port, 0: any (GROUPCHAT_PORT; default 0)')
    .option('--http-port <port>', '/metrics, /healthz, /readyz port, 0: any (GROUPCHAT_HTTP_PORT; default 0)')
    .option('--ws-port <port>', 'gateway: users\' WebSocket port, 0: any (GROUPCHAT_WS_PORT; default 0)')
    .option('--data-dir <dir>', 'broker, pi, xiu: RocksDB folder (GROUPCHAT_DATA_DIR; default data/<role>-<partition>-<replica>)')
    .option('--auth-key-file <file>', 'gateway: HS256 key file for login tokens (GROUPCHAT_AUTH_KEY_FILE; default: none, no tokens)')
    .addHelpText('after', `
Flags win over the environment. Also read from the environment:
  GROUPCHAT_PEER_SECRET_FILE   secret every peer link must present (default: none)
  GROUPCHAT_REGISTRY           ipc (a child of \`groupchat up\`, the default) or kubernetes
  GROUPCHAT_CLUSTER, GROUPCHAT_NAMESPACE         the GroupChatCluster (kubernetes)
  GROUPCHAT_POD_NAME, GROUPCHAT_POD_UID          the pod owning the member's Lease (kubernetes)
  GROUPCHAT_LOG_LEVEL          pino log level (default info)`)
    .action(async (opts) => {
      try {
        await runRole(loadRoleConfig(role, opts), await load());
      } catch (err) {
        // The causes too: "Cannot load addon" alone does not say which library is missing.
        const reasons: string[] = [];
        for (let e: unknown = err; e instanceof Error; e = e.cause) reasons.push(e.message);
        process.stderr.write(`groupchat ${role}: ${reasons.join(': ')}\n`);
        process.exit(1);
      }
    });
}

program.command('operator')
  .description('run the GroupChatCluster operator (its service account in a pod, else KUBECONFIG)')
  .option('--namespace <ns>', 'watch only this namespace (default: all; or GROUPCHAT_WATCH_NAMESPACE)')
  .option('--host <address>', 'address of the health and metrics endpoint')
  .option('--http-port <port>', 'port of the health and metrics endpoint (0: any)')
  .option('--resync-seconds <n>', 'reconcile every cluster again this often without a change (default 300; or GROUPCHAT_RESYNC_SECONDS)')
  .option('--no-leader-election', 'run the controller without electing a leader (only ever one replica)')
  .option('--leader-election-namespace <ns>', 'namespace of the leader Lease (default: the pod\'s; or GROUPCHAT_LEADER_ELECTION_NAMESPACE)')
  .option('--leader-election-id <name>', 'name of the leader Lease (default groupchat-operator)')
  .option('--lease-duration-seconds <s>', 'leader Lease duration (default 15)')
  .option('--renew-deadline-seconds <s>', 'a leader that could not renew for this long stops (default 10)')
  .option('--retry-period-seconds <s>', 'how often to renew, or to try to acquire (default 2)')
  .action(async (opts) => {
    try {
      // Imported here, so role processes never load the Kubernetes client.
      const { loadOperatorConfig, runOperator } = await import('../../operator/main.js');
      // Commander sets leaderElection to true unless --no-leader-election: only the flag's false is a choice.
      if (opts.leaderElection !== false) delete opts.leaderElection;
      await runOperator(loadOperatorConfig(opts));
    } catch (err) {
      process.stderr.write(`groupchat operator: ${(err as Error).message}\n`);
      process.exit(1);
    }
  });

registerBenchCommand(program);

await program.parseAsync(process.argv);
