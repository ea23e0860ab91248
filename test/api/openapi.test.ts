/** api/openapi.json is a valid OpenAPI 3.1 document, and it describes every route the core serves. */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';

const document = JSON.parse(readFileSync('api/openapi.json', 'utf8')) as { openapi: string; paths: Record<string, Record<string, unknown>> };

describe('the OpenAPI document', () => {
  it('validates against the OpenAPI 3.1 schema', async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents every route of the service core, with the same methods', () => {
    const source = readFileSync('api/http/handler.ts', 'utf8');
    const routes = [...source.matchAll(/method: '(GET|POST)',\s+path: '([^']+)'/g)].map((m) => `${m[1]} ${m[2]}`).sort();
    const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(routes.length).toBeGreaterThanOrEqual(8);
    expect(documented).toEqual(routes);
  });
});
