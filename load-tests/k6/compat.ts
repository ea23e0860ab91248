/// <reference types="k6" />
/**
 * k6 scenario "compat": POST /pseudonymization, the compatibility route of the replaced sample, 900 identifiers a request.
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/compat.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('compat');
export const setup = setupFor('compat');
export default iterationFor('compat');
