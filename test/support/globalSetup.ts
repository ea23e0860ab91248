/** Builds dist/ once before the suites that run the bundled server, CLI and Lambda. */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync('node_modules/.bin/tsx', ['scripts/build.ts'], { stdio: 'ignore' });
}
