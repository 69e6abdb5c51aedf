#!/usr/bin/env node
// The `groupchat` command: `groupchat up` runs a whole local cluster;
// `groupchat <role>` runs one role (what the workload image runs).
import { Command, InvalidArgumentError } from 'commander';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOperatorConfig, runOperator } from '../../operator/main.js';
import { startBroker } from '../broker/broker.js';
import { startGateway } from '../gateway/gateway.js';
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
  .option('--split-threshold <n>', 'members above which a room is split into 64 virtual rooms', count(1, 10_000_000), 1000)
  .option('--host <address>', 'loopback address to listen on', '127.0.0.1')
  .option('--web-port <port>', 'port of the chat page (0: any free port)', count(0, 65535), 8080)
  .option('--log-dir <dir>', 'where the processes write their logs')
  .option('--restart-delay <ms>', 'wait before restarting a process that died', count(0, 60_000), 1000)
  .action(async (opts) => {
    const cluster = new LocalCluster({
      partitions: opts.partitions, replicas: opts.replicas, proxies: opts.proxies, gateways: opts.gateways,
      routers: opts.routers, splitThreshold: opts.splitThreshold, host: opts.host, webPort: opts.webPort,
      logDir: opts.logDir ?? join(tmpdir(), `groupchat-${process.pid}`), restartDelayMs: opts.restartDelay,
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
