/** Builds dist/ once before the suites that run the bundled server, CLI and Lambda. */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  // scripts/test.sh builds once before it runs vitest and the Python suites side by side.
  if (process.env.PSEUDO_TEST_DIST_BUILT === '1') return;
  execFileSync('node_modules/.bin/tsx', ['scripts/build.ts'], { stdio: 'ignore' });
}
