/**
 * Failed sign-ins are counted per user name and per client address; after `maxFailures` within the
 * lock period, that key is locked for the lock period (429 with Retry-After). In memory, per
 * process: with several processes or Lambda instances the limit applies to each.
 */
const MAX_TRACKED = 100_000;

/**
 * One spelling per person for the throttle, before the directory is asked: directories compare
 * names loosely (case-insensitive, leading and trailing spaces ignored, and often compatibility
 * forms such as fullwidth `ｅｒｉｎ` or the long s of `ſteve`), so `erin`, `Erin `, `ｅｒｉｎ` must
 * count toward one lock. NFKC, then case folding (upper then lower, so ß and ẞ meet at ss), then
 * trimmed with inner spaces collapsed.
 */
export function normalizeUserName(name: string): string {
  return name.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC').trim().replace(/\s+/g, ' ');
}

interface Record {
  failures: number[];
  lockedUntil: number;
}

export class LoginThrottle {
  private readonly records = new Map<string, Record>();

  constructor(
    private readonly maxFailures: number,
    private readonly lockMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the first of these keys unlocks, or 0 when none is locked. */
  retryAfter(keys: readonly string[]): number {
    const now = this.now();
    let wait = 0;
    for (const key of keys) {
      const record = this.records.get(key);
      if (record && record.lockedUntil > now) wait = Math.max(wait, Math.ceil((record.lockedUntil - now) / 1000));
    }
    return wait;
  }

  failed(keys: readonly string[]): void {
    const now = this.now();
    for (const key of keys) {
      let record = this.records.get(key);
      if (!record) {
        if (this.records.size >= MAX_TRACKED) this.prune(now);
        record = { failures: [], lockedUntil: 0 };
        this.records.set(key, record);
      }
      record.failures = record.failures.filter((t) => now - t < this.lockMs);
      record.failures.push(now);
      if (record.failures.length >= this.maxFailures) {
        record.lockedUntil = now + this.lockMs;
        record.failures = [];
      }
    }
  }

  succeeded(key: string): void {
    this.records.delete(key);
  }

  private prune(now: number): void {
    for (const [key, record] of this.records) {
      if (record.lockedUntil <= now && record.failures.every((t) => now - t >= this.lockMs)) this.records.delete(key);
    }
    // Still full (an attack from many addresses): forget the oldest half rather than grow without bound.
    if (this.records.size >= MAX_TRACKED) [...this.records.keys()].slice(0, MAX_TRACKED / 2).forEach((k) => this.records.delete(k));
  }
}
