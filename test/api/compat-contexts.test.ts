/**
 * The compatibility routes with the context in the path (/compat/contexts/{context}/…): the AWS sample's client
 * logic (test/fixtures/aws_sample_client.py, its action from the endpoint URL's last segment and
 * `?deterministic=` appended) runs unchanged through them for two contexts in one process, against the real
 * server; its pseudonyms are /v1/pseudonymize's for each context, context-scoped keys apply, reidentify is audited.
 */
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

const VALUES = { vin: ['1HGCM82633A004352', 'WVWZZZ1JZXW000001', '1HGCM82633A004352'], email: ['ana@example.org', 'bo@example.org', 'ana@example.org'] };

/** The sample's `call` on one endpoint URL per context and action, in one Python process. */
const DRIVER = `
import json, sys
sys.path.insert(0, "test/fixtures")
from aws_sample_client import call
base, pseudo_key, reid_key, values = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
out = {}
for context, identifiers in values.items():
    endpoint = f"{base}/compat/contexts/{context}"
    pseudonyms = call(endpoint + "/pseudonymization", True, pseudo_key, identifiers)
    randomized = call(endpoint + "/pseudonymization", False, pseudo_key, identifiers)
    out[context] = {
        "pseudonyms": pseudonyms,
        "randomized": randomized,
        "identifiers": call(endpoint + "/reidentification", True, reid_key, pseudonyms),
        "fromRandomized": call(endpoint + "/reidentification", True, reid_key, randomized),
    }
print(json.dumps(out))
`;

interface ContextResult { pseudonyms: string[]; randomized: string[]; identifiers: string[]; fromRandomized: string[] }
interface LogLine { audit?: boolean; action?: string; outcome?: string; context?: string; route?: string }

describe('compatibility routes with the context in the path', () => {
  it("serve the AWS sample's unchanged client for two contexts in one run, with /v1/pseudonymize's pseudonyms", async () => {
    const { stdout } = await promisify(execFile)('.venv/bin/python', ['-c', DRIVER, api.url, api.keys.pseudonymize, api.keys.reidentify, JSON.stringify(VALUES)]);
    const result = JSON.parse(stdout) as Record<keyof typeof VALUES, ContextResult>;
    for (const context of ['vin', 'email'] as const) {
      const got = result[context];
      const direct = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context, values: VALUES[context] } });
      expect(direct.status).toBe(200);
      expect(got.pseudonyms).toEqual((direct.json as { pseudonyms: string[] }).pseudonyms);
      expect(got.identifiers).toEqual(VALUES[context]);
      // ?deterministic=False: randomized pseudonyms (the client sends each distinct value once) that still reidentify.
      expect(got.randomized.every((pseudonym, index) => pseudonym !== got.pseudonyms[index])).toBe(true);
      expect(got.fromRandomized).toEqual(VALUES[context]);
    }
    // Each context has its own pseudonyms: a value pseudonymized as the other context does not come back as itself.
    expect(result.vin.pseudonyms).not.toEqual(expect.arrayContaining([result.email.pseudonyms[0]]));
    const audit = api
      .logs()
      .split('\n')
      .filter((text) => text !== '')
      .map((text) => JSON.parse(text) as LogLine)
      .filter((line) => line.audit === true && line.action === 'reidentify' && line.outcome === 'success');
    expect(audit.map((line) => line.context).sort()).toEqual(['email', 'email', 'vin', 'vin']);
  });

  it('apply API keys scoped to contexts, and refuse an unknown context as a client mistake', async () => {
    const body = { identifiers: ['ana@example.org'] };
    const allowed = await api.call('POST', '/compat/contexts/vin/pseudonymization?deterministic=True', { apiKey: api.keys.vinOnly, body: { identifiers: ['1HGCM82633A004352'] } });
    expect(allowed.status).toBe(200);
    const refused = await api.call('POST', '/compat/contexts/email/pseudonymization?deterministic=True', { apiKey: api.keys.vinOnly, body });
    expect(refused.status).toBe(403);
    const unknown = await api.call('POST', '/compat/contexts/not_configured/pseudonymization', { apiKey: api.keys.pseudonymize, body });
    expect(unknown.status).toBe(400);
    expect((unknown.json as { type: string }).type).toMatch(/unknown-context$/);
    const roleMissing = await api.call('POST', '/compat/contexts/email/reidentification', { apiKey: api.keys.pseudonymize, body: { reidentifications: ['s1.AAAA'] } });
    expect(roleMissing.status).toBe(403);
  });
});
