/**
 * What every k6 script here shares: reading BASE_URL and the API keys from the environment, building the
 * request bodies in setup() from the scenario data (scenarios.ts), and one iteration that sends the next
 * request of the scenario's mix and checks its status. Run a script with
 *   k6 run -e BASE_URL=https://…/api -e API_KEY=… [-e REIDENTIFY_API_KEY=…] [-e SECONDS=30] [-e SOAK_MINUTES=10] load-tests/k6/mixed.ts
 */
import { check, fail } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import type { Options } from 'k6/options';
import { BATCH_COUNT, DEFAULT_OPTIONS, ENDPOINTS, batchValues, endpointAt, k6Options, requestBody, scenarios, type EndpointName, type Scenario, type ScenarioName } from './scenarios.ts';

/** Bodies by endpoint, built once in setup() and handed to every VU. */
export type SetupData = Partial<Record<EndpointName, string[]>>;

function setting(name: string): string | undefined {
  const value = __ENV[name];
  return value === undefined || value === '' ? undefined : value;
}

function required(name: string): string {
  return setting(name) ?? fail(`set ${name} (k6 run -e ${name}=…)`);
}

export function scenario(name: ScenarioName): Scenario {
  const seconds = Number(setting('SECONDS') ?? DEFAULT_OPTIONS.seconds);
  const soakMinutes = Number(setting('SOAK_MINUTES') ?? DEFAULT_OPTIONS.soakMinutes);
  const found = scenarios({ seconds, soakMinutes }).find((candidate) => candidate.name === name);
  return found ?? fail(`no scenario ${name}`);
}

export function options(name: ScenarioName): Options {
  return k6Options(scenario(name));
}

function headers(key: 'pseudonymize' | 'reidentify'): Record<string, string> {
  const apiKey = key === 'reidentify' ? (setting('REIDENTIFY_API_KEY') ?? required('API_KEY')) : required('API_KEY');
  return { 'content-type': 'application/json', 'x-api-key': apiKey };
}

function url(endpoint: EndpointName): string {
  return `${required('BASE_URL').replace(/\/$/, '')}${ENDPOINTS[endpoint].path}`;
}

/** The bodies of the scenario's endpoints; reidentify's are the pseudonyms of the same batches, asked for here. */
export function setupFor(name: ScenarioName): () => SetupData {
  return () => {
    const data: SetupData = {};
    for (const { endpoint } of scenario(name).mix) {
      const bodies: string[] = [];
      for (let index = 0; index < BATCH_COUNT; index++) {
        let batch = batchValues(index);
        if (endpoint === 'reidentify') {
          const answer = http.post(url('pseudonymize'), requestBody('pseudonymize', batch), { headers: headers('pseudonymize'), responseType: 'text' });
          if (answer.status !== 200) fail(`setup: pseudonymize answered ${answer.status}`);
          batch = (answer.json('pseudonyms') as string[] | null) ?? fail('setup: no pseudonyms in the answer');
        }
        bodies.push(requestBody(endpoint, batch));
      }
      data[endpoint] = bodies;
    }
    return data;
  };
}

/** One iteration: the next request of the mix, with a batch chosen by iteration number. */
export function iterationFor(name: ScenarioName): (data: SetupData) => void {
  const definition = scenario(name);
  return (data) => {
    const n = exec.scenario.iterationInTest;
    const endpoint = endpointAt(definition, n);
    const bodies = data[endpoint] ?? fail(`setup built no ${endpoint} bodies`);
    const body = bodies[n % bodies.length] ?? fail('no body');
    const response = http.post(url(endpoint), body, { headers: headers(ENDPOINTS[endpoint].key), tags: { endpoint } });
    check(response, { 'status is 200': (r) => r.status === 200 });
  };
}
