/**
 * api/openapi.json is a valid OpenAPI 3.1 document, and it describes the route table
 * (api/http/routes.ts) exactly: the same methods and paths, roles, query parameters, request and
 * response schemas.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { erasureCertificateView, ROUTES } from '../../api/http/routes.ts';
import { operation, resolved, schemaDifferences } from '../support/openapi.ts';

const document = JSON.parse(readFileSync('api/openapi.json', 'utf8')) as { openapi: string; paths: Record<string, Record<string, unknown>> };
const jsonSchema = (schema: z.core.$ZodType): unknown => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
const jsonContent = (node: unknown): unknown => ((resolved(node) as { content?: Record<string, { schema?: unknown }> } | undefined)?.content?.['application/json']?.schema);

describe('the OpenAPI document', () => {
  it('validates against the OpenAPI 3.1 schema', async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents every route of the route table, with the same methods, and nothing else', () => {
    const routes = ROUTES.map((r) => `${r.method} ${r.path}`).sort();
    const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(routes.length).toBeGreaterThanOrEqual(8);
    expect(documented).toEqual(routes);
  });

  describe.each(ROUTES.map((route) => ({ name: `${route.method} ${route.path}`, route })))('$name', ({ route }) => {
    const op = operation(route.method, route.path)!;

    it('states the same role (x-role), and public routes need no credentials', () => {
      expect(op['x-role']).toBe(route.role);
      if (route.role === 'public') expect(op.security).toEqual([]);
      else expect(op.security).toBeUndefined();
    });

    it('documents the same query parameters', () => {
      const documented = ((op.parameters ?? []) as { name: string; in: string }[]).filter((p) => p.in === 'query').map((p) => p.name).sort();
      // With an Arrow body the body's other fields travel in the query string: those are parameters too.
      const names = (schema: z.ZodType | undefined) => (schema ? Object.keys((jsonSchema(schema) as { properties?: object }).properties ?? {}) : []);
      const declared = [...new Set([...names(route.querySchema), ...names(route.arrowFieldsSchema)])].sort();
      expect(documented).toEqual(declared);
    });

    it('lists the body formats the route reads, for the request and the success answer', () => {
      if (!route.bodySchema) return;
      const listed = Object.keys((resolved(op.requestBody) as { content: object }).content).sort();
      expect(listed).toEqual([...route.bodyFormats].sort());
      const responses = op.responses as Record<string, unknown>;
      for (const status of Object.keys(responses).filter((s) => s.startsWith('2'))) {
        const content = (resolved(responses[status]) as { content?: object }).content;
        if (route.bodyFormats.length > 1) expect(Object.keys(content ?? {}).sort()).toEqual([...route.bodyFormats].sort());
      }
    });

    it('documents the same request body schema', () => {
      const documented = jsonContent(op.requestBody);
      if (!route.bodySchema) {
        expect(op.requestBody).toBeUndefined();
        return;
      }
      expect(schemaDifferences(jsonSchema(route.bodySchema), documented)).toEqual([]);
    });

    it('documents a success response, with the same schema where the route declares one', () => {
      const responses = op.responses as Record<string, unknown>;
      const success = Object.keys(responses).filter((status) => status.startsWith('2'));
      expect(success.length).toBeGreaterThan(0);
      if (!route.responseSchema) return; // metrics: Prometheus text, not JSON
      for (const status of success) expect(schemaDifferences(jsonSchema(route.responseSchema), jsonContent(responses[status]), `${status} response`)).toEqual([]);
    });
  });

  // The route table's certificate is the contract's: the golden certificates the Python side writes pass and fail alike.
  const certificates = join('contracts', 'golden', 'erasure-certificate');
  it.each(readdirSync(certificates).filter((file) => file.endsWith('.json')))('describes the certificate as its contract does: %s', (file) => {
    const accepted = erasureCertificateView.safeParse(JSON.parse(readFileSync(join(certificates, file), 'utf8'))).success;
    expect(accepted).toBe(file.startsWith('valid-'));
  });

  it('fails on a disagreement (the comparison itself is not vacuous)', () => {
    const pseudonymize = ROUTES.find((r) => r.path === '/v1/pseudonymize')!;
    const documented = jsonContent(operation('POST', '/v1/pseudonymize')!.requestBody);
    expect(schemaDifferences(jsonSchema(pseudonymize.bodySchema!), documented)).toEqual([]);
    const extraField = z.object({ context: z.string(), values: z.array(z.string().nullable()), deterministic: z.boolean().optional(), extra: z.string() }).strict();
    expect(schemaDifferences(jsonSchema(extraField), documented)).not.toEqual([]);
    const notStrict = z.object({ context: z.string(), values: z.array(z.string().nullable()), deterministic: z.boolean().optional() });
    expect(schemaDifferences(jsonSchema(notStrict), documented)).not.toEqual([]);
    const optionalValues = z.object({ context: z.string(), values: z.array(z.string().nullable()).optional(), deterministic: z.boolean().optional() }).strict();
    expect(schemaDifferences(jsonSchema(optionalValues), documented)).not.toEqual([]);
  });
});
