// The bench's outputs: the closing table (with the groupchat / peer ratio of
// every figure), the JSON report and an SVG chart of throughput and latency.
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
  { label: 'RSS MB (all roles)', value: (r) => round1(Object.values(r.rssMbPerRole).reduce((a, b) => a + b, 0)), better: 'lower' },
];

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** groupchat ÷ peer for every figure both have (null where the peer's is 0). */
export function ratios(reports: SystemReport[]): Record<string, number | null> {
  const [ours, peer] = [reports.find((r) => r.system === 'groupchat'), reports.find((r) => r.system !== 'groupchat')];
  const result: Record<string, number | null> = {};
  if (!ours || !peer) return result;
  for (const f of FIGURES) {
    const a = f.value(ours);
    const b = f.value(peer);
    if (a === undefined || b === undefined) continue;
    if (a === 0 && b === 0 && f.better !== 'zero') continue;
    result[f.label] = b === 0 ? (a === 0 ? 1 : null) : Math.round((a / b) * 1000) / 1000;
  }
  return result;
}

function shown(n: number | undefined): string {
  if (n === undefined) return '';
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(3).replace(/\.?0+$/, '');
}

export function formatTable(reports: SystemReport[]): string {
  const ratio = reports.length > 1 ? ratios(reports) : {};
  const header = ['figure', ...reports.map((r) => r.system), ...(reports.length > 1 ? ['ratio'] : [])];
  const rows: string[][] = [];
  const audited = reports.some((r) => r.expected > 0 || r.delivered > 0);
  for (const f of FIGURES) {
    const values = reports.map((r) => f.value(r));
    if (values.every((v) => v === undefined || v === 0) && (f.better !== 'zero' || !audited)) continue;
    if (values.every((v) => v === undefined)) continue;
    const row = [f.label, ...values.map(shown)];
    if (reports.length > 1) row.push(ratio[f.label] == null ? (f.label in ratio ? 'n/a' : '') : `${shown(ratio[f.label]!)}×`);
    rows.push(row);
  }
  for (const role of [...new Set(reports.flatMap((r) => Object.keys(r.rssMbPerRole)))].sort()) {
    rows.push([`  RSS MB ${role}`, ...reports.map((r) => r.rssMbPerRole[role] === undefined ? '' : `${r.rssMbPerRole[role]} (${r.processesPerRole[role]}p)`), ...(reports.length > 1 ? [''] : [])]);
  }
  for (const role of [...new Set(reports.flatMap((r) => Object.keys(r.cpuSecondsPerRole)))].sort()) {
    rows.push([`  CPU s ${role}`, ...reports.map((r) => r.cpuSecondsPerRole[role] === undefined ? '' : String(r.cpuSecondsPerRole[role])), ...(reports.length > 1 ? [''] : [])]);
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

const COLORS: Record<string, string> = { groupchat: '#2b6cb0', socketio: '#c05621' };

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
