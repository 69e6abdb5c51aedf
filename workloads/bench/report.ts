// The bench's outputs: the closing table (with the groupchat / peer ratio of
// every figure, for each peer), the load-generator warnings, the JSON report
// and an SVG chart of throughput and latency.
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { SystemReport } from './runner.js';

export interface Figure {
  label: string;
  value(r: SystemReport): number | undefined;
  /** Which way is better, for reading the ratio. */
  better: 'higher' | 'lower' | 'zero';
}

export const FIGURES: Figure[] = [
  { label: 'published', value: (r) => r.published, better: 'higher' },
  { label: 'failed', value: (r) => r.failed, better: 'zero' },
  { label: 'expected', value: (r) => r.expected, better: 'higher' },
  { label: 'delivered', value: (r) => r.delivered, better: 'higher' },
  { label: 'lost', value: (r) => r.lost, better: 'zero' },
  { label: 'duplicated', value: (r) => r.duplicated, better: 'zero' },
  { label: 'reordered', value: (r) => r.reordered, better: 'zero' },
  { label: 'publishPerSec', value: (r) => r.publishPerSec, better: 'higher' },
  { label: 'deliveriesPerSec', value: (r) => r.deliveriesPerSec, better: 'higher' },
  { label: 'latency p50 ms', value: (r) => r.latencyMs.p50, better: 'lower' },
  { label: 'latency p99 ms', value: (r) => r.latencyMs.p99, better: 'lower' },
  { label: 'latency max ms', value: (r) => r.latencyMs.max, better: 'lower' },
  { label: 'ack p99 ms', value: (r) => r.ackLatencyMs?.p99, better: 'lower' },
  { label: 'log commit p50 ms', value: (r) => r.commitLatencyMs?.p50, better: 'lower' },
  { label: 'log commit p99 ms', value: (r) => r.commitLatencyMs?.p99, better: 'lower' },
  { label: 'connections', value: (r) => r.connections, better: 'higher' },
  { label: 'connectionsPerSec', value: (r) => r.connectionsPerSec, better: 'higher' },
  { label: 'bytesPerConnection', value: (r) => r.bytesPerConnection, better: 'lower' },
  { label: 'server CPU µs per unit', value: (r) => r.serverCpuUsPerUnit, better: 'lower' },
  { label: 'RSS MB (all roles)', value: (r) => round1(totalMb(r.rssMbPerRole)), better: 'lower' },
  { label: 'PSS MB (all roles, at the end)', value: (r) => round1(totalMb(r.pssMbPerRole)), better: 'lower' },
];

/** Megabytes per role, summed over the roles. */
export function totalMb(perRole: Record<string, number>): number {
  return Object.values(perRole).reduce((a, b) => a + b, 0);
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** groupchat ÷ peer for every figure both have (null where the peer's is 0). */
function ratiosTo(ours: SystemReport, peer: SystemReport): Record<string, number | null> {
  const result: Record<string, number | null> = {};
  for (const f of FIGURES) {
    const a = f.value(ours);
    const b = f.value(peer);
    if (a === undefined || b === undefined) continue;
    if (a === 0 && b === 0 && f.better !== 'zero') continue;
    result[f.label] = b === 0 ? (a === 0 ? 1 : null) : Math.round((a / b) * 1000) / 1000;
  }
  return result;
}

/** For each peer in the run: groupchat ÷ that peer, figure by figure. */
export function ratios(reports: SystemReport[]): Record<string, Record<string, number | null>> {
  const ours = reports.find((r) => r.system === 'groupchat');
  if (!ours) return {};
  return Object.fromEntries(reports.filter((r) => r !== ours).map((peer) => [peer.system, ratiosTo(ours, peer)]));
}

/** Above this share of a core, a load process may have limited the run rather than the system under test. */
export const LOAD_BOTTLENECK_SHARE = 0.8;

/** One warning per load process that used more than LOAD_BOTTLENECK_SHARE of a core, per system. */
export function loadWarnings(reports: SystemReport[]): string[] {
  return reports.flatMap((r) => r.loadCpu.filter((p) => p.coreShare > LOAD_BOTTLENECK_SHARE).map((p) =>
    `${r.system}: load process ${p.name} used ${Math.round(p.coreShare * 100)}% of a core (${p.cpuSeconds} CPU s): `
    + 'the load generator, not the system, may have been the bottleneck; add --workers or --publishers'));
}

function shown(n: number | undefined): string {
  if (n === undefined) return '';
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(3).replace(/\.?0+$/, '');
}

export function formatTable(reports: SystemReport[]): string {
  const byPeer = Object.entries(ratios(reports));
  const header = ['figure', ...reports.map((r) => r.system), ...byPeer.map(([peer]) => `÷ ${peer}`)];
  const noRatios = byPeer.map(() => '');
  const rows: string[][] = [];
  const audited = reports.some((r) => r.expected > 0 || r.delivered > 0);
  for (const f of FIGURES) {
    const values = reports.map((r) => f.value(r));
    if (values.every((v) => v === undefined || v === 0) && (f.better !== 'zero' || !audited)) continue;
    if (values.every((v) => v === undefined)) continue;
    const row = [f.label, ...values.map(shown)];
    for (const [, ratio] of byPeer) row.push(ratio[f.label] == null ? (f.label in ratio ? 'n/a' : '') : `${shown(ratio[f.label]!)}×`);
    rows.push(row);
  }
  for (const role of [...new Set(reports.flatMap((r) => Object.keys(r.rssMbPerRole)))].sort()) {
    rows.push([`  RSS MB ${role}`, ...reports.map((r) => r.rssMbPerRole[role] === undefined ? '' : `${r.rssMbPerRole[role]} (${r.processesPerRole[role]}p)`), ...noRatios]);
  }
  for (const role of [...new Set(reports.flatMap((r) => Object.keys(r.cpuSecondsPerRole)))].sort()) {
    rows.push([`  CPU s ${role}`, ...reports.map((r) => r.cpuSecondsPerRole[role] === undefined ? '' : String(r.cpuSecondsPerRole[role])), ...noRatios]);
  }
  for (const name of [...new Set(reports.flatMap((r) => r.loadCpu.map((p) => p.name)))]) {
    const share = (r: SystemReport) => r.loadCpu.find((p) => p.name === name)?.coreShare;
    rows.push([`  load % of a core ${name}`, ...reports.map((r) => { const s = share(r); return s === undefined ? '' : `${Math.round(s * 100)}%${s > LOAD_BOTTLENECK_SHARE ? ' !' : ''}`; }), ...noRatios]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function machine() {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    node: process.version,
    kernel: release(),
    /** 1-minute load average when the report was written: above nproc, other work shared the CPUs. */
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}

const COLORS: Record<string, string> = { groupchat: '#2b6cb0', socketio: '#c05621', centrifugo: '#2f855a' };

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** The headline throughput of a scenario, and its unit. */
function throughput(r: SystemReport): { value: number; label: string } {
  switch (r.scenario) {
    case 'connect': return { value: r.connectionsPerSec ?? 0, label: 'connections/s' };
    case 'idle': return { value: r.bytesPerConnection ?? 0, label: 'bytes per idle connection (lower is better)' };
    case 'ingest': return { value: r.publishPerSec, label: 'messages/s acked through one ingress process' };
    default: return { value: r.deliveriesPerSec, label: 'deliveries/s' };
  }
}

/** Two bar panels: throughput per system, and latency p50/p99 per system. */
export function chartSvg(reports: SystemReport[], title: string): string {
  const W = 760, H = 360, panelW = 340, top = 70, plotH = 220;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  const panel = (x0: number, heading: string, bars: Array<{ label: string; value: number; color: string; text: string }>) => {
    parts.push(`<text x="${x0 + panelW / 2}" y="${top - 18}" text-anchor="middle" font-weight="bold">${escapeXml(heading)}</text>`);
    parts.push(`<line x1="${x0}" y1="${top + plotH}" x2="${x0 + panelW}" y2="${top + plotH}" stroke="#333"/>`);
    const max = Math.max(1e-9, ...bars.map((b) => b.value));
    const slot = panelW / Math.max(1, bars.length);
    const bw = Math.min(70, slot * 0.6);
    bars.forEach((b, i) => {
      const h = (b.value / max) * (plotH - 20);
      const x = x0 + slot * i + (slot - bw) / 2;
      const y = top + plotH - h;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color}"/>`);
      parts.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle">${escapeXml(b.text)}</text>`);
      parts.push(`<text x="${(x + bw / 2).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(b.label)}</text>`);
    });
  };
  const tp = reports.map((r) => ({ r, t: throughput(r) }));
  panel(30, tp[0]?.t.label ?? 'throughput', tp.map(({ r, t }) => ({
    label: r.system, value: t.value, color: COLORS[r.system] ?? '#555', text: t.value.toLocaleString('en-US'),
  })));
  const lat = reports.flatMap((r) => [
    { label: `${r.system} p50`, value: r.latencyMs.p50, color: COLORS[r.system] ?? '#555', text: `${r.latencyMs.p50} ms` },
    { label: `${r.system} p99`, value: r.latencyMs.p99, color: COLORS[r.system] ?? '#555', text: `${r.latencyMs.p99} ms` },
  ]);
  const latHeading = reports[0]?.scenario === 'connect' || reports[0]?.scenario === 'idle' ? 'connect+login+join latency (ms)'
    : reports[0]?.scenario === 'ingest' ? 'publish-to-ack latency (ms)' : 'publish-to-delivery latency (ms)';
  panel(W / 2 + 20, latHeading, lat);
  parts.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle" fill="#555">${escapeXml(`${machine().nproc} cores, Node ${process.version}; lower latency is better`)}</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
