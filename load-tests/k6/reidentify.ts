/// <reference types="k6" />
/**
 * k6 scenario "reidentify": POST /v1/reidentify of 900 pseudonyms (made in setup) with a reidentify key (REIDENTIFY_API_KEY).
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/reidentify.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('reidentify');
export const setup = setupFor('reidentify');
export default iterationFor('reidentify');
