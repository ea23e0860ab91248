/** The AWS sample's client code pattern, in Python with requests, against the real server: unchanged, it must work. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../support/service.ts';

let api: TestService;
beforeAll(async () => {
  api = await startTestService();
});
afterAll(async () => {
  await api.close();
});

describe('existing PySpark consumers of the AWS sample service', () => {
  it('pseudonymize and reidentify with their own request shapes', async () => {
    const { stdout } = await promisify(execFile)('.venv/bin/python', ['test/fixtures/aws_sample_client.py', api.url, api.keys.pseudonymize, api.keys.reidentify]);
    const result = JSON.parse(stdout) as { pseudonyms: string[]; identifiers: string[] };
    expect(result.identifiers).toEqual(['1HGCM82633A004352', 'WVWZZZ1JZXW000001', '1HGCM82633A004352']);
    expect(result.pseudonyms[0]).toBe(result.pseudonyms[2]);
    expect(result.pseudonyms[0]).toMatch(/^s1\./);
    const direct = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'vin', values: ['1HGCM82633A004352'] } });
    expect((direct.json as { pseudonyms: string[] }).pseudonyms[0]).toBe(result.pseudonyms[0]);
  });
});
