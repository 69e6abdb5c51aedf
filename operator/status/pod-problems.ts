// Why a cluster's pods cannot run, as their status says: a container that
// cannot be created (its image cannot be pulled, its configuration cannot be
// used) or that keeps crashing. The kubelet's waiting reason is kept; the
// cluster's Degraded condition carries them all in one sentence.
import type { V1Pod } from '@kubernetes/client-node';

/** The kubelet's waiting reasons that mean a pod will not run without help, and what they mean. */
const WAITING_PROBLEMS: Record<string, string> = {
  ErrImagePull: 'cannot pull its image',
  ImagePullBackOff: 'cannot pull its image',
  InvalidImageName: 'has an invalid image name',
  CreateContainerConfigError: 'has a container configuration that cannot be used',
  CreateContainerError: 'cannot create its container',
  CrashLoopBackOff: 'keeps crashing',
};

/** What is wrong with one pod, in words, or undefined when nothing is. */
export function podProblem(pod: V1Pod): string | undefined {
  for (const c of pod.status?.containerStatuses ?? []) {
    const reason = c.state?.waiting?.reason;
    const problem = reason ? WAITING_PROBLEMS[reason] : undefined;
    if (!problem) continue;
    const detail = reason === 'CrashLoopBackOff' ? `, ${c.restartCount} restarts` : c.image ? `, ${c.image}` : '';
    return `${pod.metadata?.name} ${problem} (${reason}${detail})`;
  }
  return undefined;
}

/** Shown by name, at most; the rest are counted. */
const NAMED = 3;

/** One sentence about every pod that cannot run, or undefined when they all can. */
export function describePodProblems(pods: readonly V1Pod[]): string | undefined {
  const problems = pods.flatMap((p) => podProblem(p) ?? []).sort();
  if (problems.length === 0) return undefined;
  const named = problems.slice(0, NAMED).join('; ');
  const more = problems.length > NAMED ? `; and ${problems.length - NAMED} more` : '';
  return `${problems.length} ${problems.length === 1 ? 'pod cannot' : 'pods cannot'} run: ${named}${more}.`;
}
