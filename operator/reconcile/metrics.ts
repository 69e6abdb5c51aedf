// The operator's own metrics, served on its /metrics beside the process
// metrics: how often and how long it reconciles, what waits in its queue, and
// what it writes to the API server (applies made and skipped, status writes).
import { Counter, Gauge, Histogram } from 'prom-client';
import { metrics } from '../../workloads/observability/http.js';

export const reconciles = new Counter({
  name: 'groupchat_operator_reconciles_total', help: 'Reconciles of a GroupChatCluster, by result (success, error)',
  labelNames: ['result'] as const, registers: [metrics],
});

export const reconcileSeconds = new Histogram({
  name: 'groupchat_operator_reconcile_duration_seconds', help: 'Time one reconcile of a GroupChatCluster took',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [metrics],
});

export const queueDepth = new Gauge({
  name: 'groupchat_operator_queue_depth', help: 'GroupChatClusters waiting for a reconcile', registers: [metrics],
});

export const applies = new Counter({
  name: 'groupchat_operator_applies_total',
  help: 'Desired objects by kind and outcome: applied (a server-side apply was sent) or skipped (unchanged since the last apply)',
  labelNames: ['kind', 'outcome'] as const, registers: [metrics],
});

export const statusWrites = new Counter({
  name: 'groupchat_operator_status_writes_total', help: 'Writes of a GroupChatCluster\'s status (only made when it changed)',
  registers: [metrics],
});

export const isLeader = new Gauge({
  name: 'groupchat_operator_leader', help: '1 while this operator holds the leader Lease and reconciles, else 0', registers: [metrics],
});
