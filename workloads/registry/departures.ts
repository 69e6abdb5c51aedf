// Calls back once for each member of a role that was in the registry and is
// no longer: its process ended or its TTL ran out. A member never seen is
// not reported, so a peer that talks before it registers is not dropped.
import type { Registry } from './registry.js';
import type { Role } from './schema.js';

export function onDeparture(registry: Registry, role: Role, departed: (memberId: string) => void): void {
  const known = new Set<string>();
  const check = () => {
    const present = new Set(registry.members().filter((m) => m.role === role).map((m) => m.id));
    for (const id of known) {
      if (!present.has(id)) {
        known.delete(id);
        departed(id);
      }
    }
    for (const id of present) known.add(id);
  };
  registry.on('members', check);
  check();
}

/**
 * Calls back each time memberId is back in the registry after having left it
 * (it hung past its TTL and registered again). Peers forgot its state when it
 * left, so it must send that state again. left, if given, is called when it
 * drops out.
 */
export function onReturn(registry: Registry, memberId: string, returned: () => void, left?: () => void): void {
  let state: 'unseen' | 'present' | 'gone' = 'unseen';
  const check = () => {
    const present = registry.members().some((m) => m.id === memberId);
    if (present && state === 'gone') returned();
    if (!present && state === 'present') left?.();
    state = present ? 'present' : state === 'unseen' ? 'unseen' : 'gone';
  };
  registry.on('members', check);
  check();
}
