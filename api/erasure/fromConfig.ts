/** The erasure runner the configuration names. */
import type { ErasureRunnerConfig } from '../config/config.ts';
import { EmrErasureRunner } from './emrRunner.ts';
import { LocalErasureRunner } from './localRunner.ts';
import type { ErasureRunner } from './runner.ts';

export function erasureRunnerFor(config: ErasureRunnerConfig): ErasureRunner {
  return config.kind === 'local' ? new LocalErasureRunner(config) : new EmrErasureRunner(config);
}
