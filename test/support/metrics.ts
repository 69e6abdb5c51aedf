// Reads one sample from a process's Prometheus /metrics.
export async function metricValue(httpAddress: string, sample: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Like metricValue, but a sample the process does not export is an error, not 0. */
export async function requiredMetric(httpAddress: string, sample: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  if (!line) throw new Error(`${httpAddress} does not export ${sample}`);
  return Number(line.split(' ').pop());
}
