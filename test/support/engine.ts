/** An engine over a keyring built from fixed root keys, for engine-level tests. */
import { PseudonymEngine } from '../../api/engine/engine.ts';
import { Keyring } from '../../api/keyring/keyring.ts';
import { PolicySet } from '../../api/policy/policy.ts';
import type { KeyState } from '../../api/types/keyring.ts';

export const TEST_POLICIES = PolicySet.fromFile('test/fixtures/policies.json');

export function keyringOf(versions: { version: number; state: KeyState; root?: Uint8Array }[]): Keyring {
  const keyring = new Keyring();
  keyring.apply(versions.map((v) => ({ version: v.version, state: v.state, createdAt: '2026-01-01T00:00:00.000Z', material: v.root ? Uint8Array.from(v.root) : undefined })));
  return keyring;
}

export function engineOf(keyring: Keyring, cacheEntries = 1000): PseudonymEngine {
  return new PseudonymEngine(keyring, TEST_POLICIES, { cacheEntries, maxValueBytes: 1024 });
}
