/// <reference types="k6" />
/**
 * k6 scenario "soak": A soak: the steady rate for SOAK_MINUTES (10 for the target); watch the function's or server's memory.
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/soak.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('soak');
export const setup = setupFor('soak');
export default iterationFor('soak');
