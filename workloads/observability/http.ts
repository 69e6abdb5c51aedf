// Every role serves /metrics (Prometheus), /healthz (the process is alive and
// its event loop turns) and /readyz (it can do its job: registered, linked).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry as MetricsRegistry } from 'prom-client';

export const metrics = new MetricsRegistry();
// The event-loop delay histogram samples every 100 ms, not every 10 ms (the
// default): 100 wake-ups a second cost an idle process about 0.5 % of a core.
collectDefaultMetrics({ register: metrics, eventLoopMonitoringPrecision: 100 });

export interface HealthServer {
  address: string;
  close(): Promise<void>;
}

export async function serveHealth(host: string, port: number, isReady: () => boolean): Promise<HealthServer> {
  const server = http.createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', metrics.contentType);
      res.end(await metrics.metrics());
    } else if (req.url === '/healthz') {
      res.end('ok\n');
    } else if (req.url === '/readyz') {
      const ready = isReady();
      res.statusCode = ready ? 200 : 503;
      res.end(ready ? 'ready\n' : 'not ready\n');
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: `${host}:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
