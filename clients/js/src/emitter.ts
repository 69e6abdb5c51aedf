// A small typed event emitter that runs in browsers and Node alike (node:events
// is Node-only). Listeners run synchronously, in the order added; one that
// throws stops the emit and the error reaches the caller, as with Node's.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- stored untyped; on/off/emit keep the types
type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly listeners = new Map<keyof Events, Array<{ listener: Listener; once: boolean }>>();

  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.add(event, listener, false);
  }

  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.add(event, listener, true);
  }

  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const list = this.listeners.get(event);
    const at = list?.findIndex((entry) => entry.listener === listener) ?? -1;
    if (at >= 0) list!.splice(at, 1);
    return this;
  }

  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const list = this.listeners.get(event);
    if (!list?.length) return false;
    // A copy: listeners may add or remove listeners while this runs.
    for (const entry of [...list]) {
      if (entry.once) this.off(event, entry.listener);
      entry.listener(...args);
    }
    return true;
  }

  private add(event: keyof Events, listener: Listener, once: boolean): this {
    let list = this.listeners.get(event);
    if (!list) this.listeners.set(event, (list = []));
    list.push({ listener, once });
    return this;
  }
}
