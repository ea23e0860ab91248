/**
 * Checks real responses against api/openapi.json: the operation's response for that status and
 * content type must exist and the body must validate against its schema (JSON Schema 2020-12).
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

type Json = Record<string, unknown>;
const document = JSON.parse(readFileSync('api/openapi.json', 'utf8')) as Json;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ ...document, $id: 'openapi.json' });

const pointer = (...parts: string[]): string => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

function at(path: string[]): unknown {
  let node: unknown = document;
  for (const part of path) node = node && typeof node === 'object' ? (node as Json)[part] : undefined;
  return node;
}

/** Throws unless the response is documented and its body matches. */
export function assertMatchesOpenApi(method: string, path: string, status: number, contentType: string, body: unknown): void {
  let responsePath = ['paths', path, method.toLowerCase(), 'responses', String(status)];
  let response = at(responsePath) as Json | undefined;
  if (!response) throw new Error(`OpenAPI: ${method} ${path} does not document status ${status}`);
  const ref = response.$ref;
  if (typeof ref === 'string') {
    responsePath = ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    response = at(responsePath) as Json;
  }
  const mediaType = contentType.split(';')[0]!.trim();
  if (!at([...responsePath, 'content', mediaType, 'schema'])) {
    throw new Error(`OpenAPI: ${method} ${path} ${status} does not document content type ${mediaType}`);
  }
  const validate = ajv.compile({ $ref: `openapi.json#/${pointer(...responsePath, 'content', mediaType, 'schema')}` });
  if (!validate(body)) throw new Error(`OpenAPI: ${method} ${path} ${status} body does not match: ${ajv.errorsText(validate.errors)}`);
}

export const documentedPaths = Object.keys(document.paths as Json);
