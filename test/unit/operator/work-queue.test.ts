import { WorkQueue } from '../../../operator/reconcile/work-queue.js';

test('a key is handled once however often it is added while queued, and again if added while handled', async () => {
  const handled: string[] = [];
  let release!: () => void;
  let started!: () => void;
  const firstStarted = new Promise<void>((r) => { started = r; });
  let finish!: () => void;
  const thirdHandled = new Promise<void>((r) => { finish = r; });
  const queue = new WorkQueue(async (key) => {
    handled.push(key);
    if (handled.length === 1) {
      started();
      await new Promise<void>((r) => { release = r; });
    }
    if (handled.length === 3) finish();
    return {};
  }, () => undefined);
  queue.add('a');
  await firstStarted; // 'a' is being handled
  queue.add('a');
  queue.add('a');
  queue.add('b');
  release();
  await thirdHandled;
  await queue.stop(); // waits for the handler that is running; nothing more is taken
  expect(handled).toEqual(['a', 'b', 'a']);
});

test('a failing key comes back after a backoff and reports each failure', async () => {
  const errors: string[] = [];
  let calls = 0;
  const done = new Promise<void>((resolve) => {
    const queue = new WorkQueue(async () => {
      calls += 1;
      if (calls < 3) throw new Error(`fail ${calls}`);
      resolve();
      return {};
    }, (_, err) => errors.push((err as Error).message));
    queue.add('k');
  });
  await done;
  expect(errors).toEqual(['fail 1', 'fail 2']);
});

test('a handler can ask to be called again later', async () => {
  let calls = 0;
  await new Promise<void>((resolve) => {
    const queue = new WorkQueue(async () => {
      calls += 1;
      if (calls === 2) { resolve(); void queue.stop(); }
      return { requeueAfterMs: 20 };
    }, () => undefined);
    queue.add('k');
  });
  expect(calls).toBe(2);
});
