/// <reference types="k6" />
/**
 * k6 scenario "mixed": A steady mixed load: pseudonymize, compatibility and reidentify in the proportions of scenarios.ts.
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/mixed.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('mixed');
export const setup = setupFor('mixed');
export default iterationFor('mixed');
