/** The retry/backoff helper: schedule, retry decisions and abort, with an injected sleep (no wall clock). */
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, retry, sleep, type Sleep } from '../../api/retry/backoff.ts';

/** A sleep that records the delays it was asked for and returns at once. */
function recordingSleep(): { sleep: Sleep; delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  };
}

class Throttled extends Error {
  override readonly name = 'Throttled';
}
class Refused extends Error {
  override readonly name = 'Refused';
}

describe('backoffDelayMs', () => {
  const policy = { baseDelayMs: 100, maxDelayMs: 1000 };

  it('doubles the ceiling at each retry up to the cap, and waits nothing before the first attempt', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, { ...policy, jitter: 'none' }));
    expect(ceilings).toEqual([0, 100, 200, 400, 800, 1000, 1000]);
  });

  it('draws full jitter uniformly below the ceiling', () => {
    expect(backoffDelayMs(3, policy, () => 0)).toBe(0);
    expect(backoffDelayMs(3, policy, () => 0.5)).toBe(200);
    expect(backoffDelayMs(3, policy, () => 0.999)).toBeLessThan(400);
    for (let n = 1; n < 40; n++) expect(backoffDelayMs(n, policy)).toBeLessThanOrEqual(1000);
  });

  it('stays at the cap for very large retry numbers', () => {
    expect(backoffDelayMs(5000, { ...policy, jitter: 'none' })).toBe(1000);
  });
});

describe('retry', () => {
  it('returns the first success and waits the schedule between failed attempts', async () => {
    const { sleep, delays } = recordingSleep();
    const seen: number[] = [];
    const result = await retry(
      (attempt) => {
        seen.push(attempt);
        return attempt < 3 ? Promise.reject(new Throttled()) : Promise.resolve('stored');
      },
      { maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 1000, sleep, random: () => 0.5 },
    );
    expect(result).toBe('stored');
    expect(seen).toEqual([1, 2, 3]);
    expect(delays).toEqual([5, 10]);
  });

  it('rethrows the last error unchanged once the attempts run out', async () => {
    const { sleep, delays } = recordingSleep();
    let calls = 0;
    const failing = retry(
      () => {
        calls++;
        return Promise.reject(new Throttled(`attempt ${calls}`));
      },
      { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 1000, jitter: 'none', sleep },
    );
    await expect(failing).rejects.toThrow(new Throttled('attempt 3'));
    expect(calls).toBe(3);
    expect(delays).toEqual([10, 20]);
  });

  it('does not retry an error the predicate refuses', async () => {
    const { sleep, delays } = recordingSleep();
    let calls = 0;
    const refused = retry(
      () => {
        calls++;
        return Promise.reject(new Refused());
      },
      { maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 1000, isRetryable: (error) => error instanceof Throttled, sleep },
    );
    await expect(refused).rejects.toBeInstanceOf(Refused);
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });

  it('reports each retry with the failed attempt and its delay', async () => {
    const events: { attempt: number; delayMs: number; name: string }[] = [];
    await retry(
      (attempt) => (attempt < 3 ? Promise.reject(new Throttled()) : Promise.resolve()),
      {
        maxAttempts: 3,
        baseDelayMs: 10,
        maxDelayMs: 15,
        jitter: 'none',
        sleep: recordingSleep().sleep,
        onRetry: ({ error, attempt, delayMs }) => events.push({ attempt, delayMs, name: error instanceof Error ? error.name : '' }),
      },
    );
    expect(events).toEqual([
      { attempt: 1, delayMs: 10, name: 'Throttled' },
      { attempt: 2, delayMs: 15, name: 'Throttled' },
    ]);
  });

  it('treats a maxAttempts below 1 as one attempt', async () => {
    let calls = 0;
    const once = retry(
      () => {
        calls++;
        return Promise.reject(new Throttled());
      },
      { maxAttempts: 0, baseDelayMs: 10, maxDelayMs: 10, sleep: recordingSleep().sleep },
    );
    await expect(once).rejects.toBeInstanceOf(Throttled);
    expect(calls).toBe(1);
  });

  it('stops when the signal aborts during a wait, with the signal reason', async () => {
    const controller = new AbortController();
    let calls = 0;
    const stopped = retry(
      () => {
        calls++;
        return Promise.reject(new Throttled());
      },
      {
        maxAttempts: 10,
        baseDelayMs: 10,
        maxDelayMs: 10,
        signal: controller.signal,
        sleep: (_ms, signal) => {
          controller.abort(new Refused('shutting down'));
          return signal?.reason instanceof Error ? Promise.reject(signal.reason) : Promise.resolve();
        },
      },
    );
    await expect(stopped).rejects.toThrow(new Refused('shutting down'));
    expect(calls).toBe(1);
  });

  it('does not start when the signal has already aborted', async () => {
    let calls = 0;
    const controller = new AbortController();
    controller.abort();
    const never = retry(() => Promise.resolve(++calls), { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1, signal: controller.signal });
    await expect(never).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(0);
  });
});

describe('sleep', () => {
  it('rejects at once with the reason of a signal that aborts while it waits', async () => {
    const controller = new AbortController();
    // A delay long enough that only the abort can end it: the test asserts the outcome, not a duration.
    const waiting = sleep(3_600_000, controller.signal);
    controller.abort(new Refused('stop'));
    await expect(waiting).rejects.toThrow(new Refused('stop'));
  });

  it('resolves after a zero delay', async () => {
    await expect(sleep(0)).resolves.toBeUndefined();
  });
});
