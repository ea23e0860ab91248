/// <reference types="k6" />
/**
 * k6 scenario "pseudonymize": POST /v1/pseudonymize with 900-value batches (the Spark client's pattern) at the target rate.
 * Stages and thresholds: load-tests/k6/scenarios.ts. Run: k6 run -e BASE_URL=… -e API_KEY=… load-tests/k6/pseudonymize.ts
 */
import type { Options } from 'k6/options';
import { iterationFor, options as optionsFor, setupFor } from './lib.ts';

export const options: Options = optionsFor('pseudonymize');
export const setup = setupFor('pseudonymize');
export default iterationFor('pseudonymize');
