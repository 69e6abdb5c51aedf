// Reads one sample from a process's Prometheus /metrics.
export async function metricValue(httpAddress: string, sample: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}
