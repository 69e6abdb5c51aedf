// Metrics the hot path touches once per message. prom-client hashes the label
// set on every inc() and set(); here the hot path bumps a plain field and
// prom-client reads it only when /metrics is scraped.
import { Counter, Gauge } from 'prom-client';
import { metrics } from './http.js';

export interface Tally {
  count: number;
}

interface Cell extends Tally {
  labels: Record<string, string>;
  reported: number;
}

/** A Prometheus counter whose label sets are cells: `cell.count++` on the hot path. */
export class HotCounter {
  private readonly cells = new Map<string, Cell>();

  constructor(config: { name: string; help: string; labelNames?: readonly string[] }) {
    const cells = this.cells;
    new Counter({
      name: config.name, help: config.help, labelNames: [...(config.labelNames ?? [])], registers: [metrics],
      collect() {
        for (const cell of cells.values()) {
          const delta = cell.count - cell.reported;
          if (delta <= 0) continue;
          this.inc(cell.labels, delta);
          cell.reported = cell.count;
        }
      },
    });
  }

  /** The tally of one label set; look it up once, outside the hot path. */
  cell(labels: Record<string, string> = {}): Tally {
    const key = JSON.stringify(labels);
    let cell = this.cells.get(key);
    if (!cell) this.cells.set(key, (cell = { labels, count: 0, reported: 0 }));
    return cell;
  }
}

/** A Prometheus gauge read from its source at scrape time (the source is replaced when a role starts). */
export function sampledGauge(config: { name: string; help: string }): { source: () => number } {
  const holder = { source: () => 0 };
  new Gauge({ ...config, registers: [metrics], collect() { this.set(holder.source()); } });
  return holder;
}
