/// <reference types="k6" />
/**
 * k6 scenario "spike": A spike: a low steady rate, ten times that within 2 s, held, then back.
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/spike.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('spike');
export const setup = setupFor('spike');
export default iterationFor('spike');
