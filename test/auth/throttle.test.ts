import { describe, expect, it } from 'vitest';
import { LoginThrottle } from '../../api/auth/throttle.ts';

describe('login throttle', () => {
  it('locks a key after the maximum failures within the period, for the period, and a success clears the user', () => {
    let now = 1_000_000;
    const throttle = new LoginThrottle(3, 60_000, () => now);
    const keys = ['user:steve', 'address:10.0.0.1'];
    throttle.failed(keys);
    throttle.failed(keys);
    expect(throttle.retryAfter(keys)).toBe(0);
    throttle.failed(keys);
    expect(throttle.retryAfter(keys)).toBe(60);
    expect(throttle.retryAfter(['user:erin', 'address:10.0.0.1'])).toBe(60);
    expect(throttle.retryAfter(['user:erin', 'address:10.0.0.2'])).toBe(0);
    now += 30_000;
    expect(throttle.retryAfter(keys)).toBe(30);
    now += 30_001;
    expect(throttle.retryAfter(keys)).toBe(0);
    throttle.failed(['user:steve']);
    throttle.failed(['user:steve']);
    throttle.succeeded('user:steve');
    throttle.failed(['user:steve']);
    expect(throttle.retryAfter(['user:steve'])).toBe(0);
  });

  it('forgets failures older than the period', () => {
    let now = 0;
    const throttle = new LoginThrottle(2, 1000, () => now);
    throttle.failed(['k']);
    now = 1500;
    throttle.failed(['k']);
    expect(throttle.retryAfter(['k'])).toBe(0);
  });
});
