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
  const response = at(responsePath) as Json | undefined;
  if (!response) throw new Error(`OpenAPI: ${method} ${path} does not document status ${status}`);
  const ref = response.$ref;
  if (typeof ref === 'string') responsePath = ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const mediaType = contentType.split(';')[0]!.trim();
  if (!at([...responsePath, 'content', mediaType, 'schema'])) {
    throw new Error(`OpenAPI: ${method} ${path} ${status} does not document content type ${mediaType}`);
  }
  const validate = ajv.compile({ $ref: `openapi.json#/${pointer(...responsePath, 'content', mediaType, 'schema')}` });
  if (!validate(body)) throw new Error(`OpenAPI: ${method} ${path} ${status} body does not match: ${ajv.errorsText(validate.errors)}`);
}

export const documentedPaths = Object.keys(document.paths as Json);

/** The document's node at a local `$ref` (`#/components/schemas/X`), followed until it is not a reference. */
export function resolved(node: unknown): unknown {
  let current = node;
  while (current && typeof current === 'object' && typeof (current as Json).$ref === 'string') {
    current = at(((current as Json).$ref as string).replace(/^#\//, '').split('/'));
  }
  return current;
}

/** The operation object for a method and path, if documented. */
export function operation(method: string, path: string): Json | undefined {
  return at(['paths', path, method.toLowerCase()]) as Json | undefined;
}

/**
 * Where two JSON Schemas disagree on structure: object property names, `required`,
 * `additionalProperties: false`, array items, union options (anyOf and oneOf alike, in order),
 * enum values and types. Constraints (lengths, patterns, minimums) are not compared. `expected`
 * comes from the route table (z.toJSONSchema), `documented` from api/openapi.json.
 */
export function schemaDifferences(expected: unknown, documented: unknown, where = 'body'): string[] {
  const a = resolved(expected) as Json | undefined;
  const b = resolved(documented) as Json | undefined;
  if (!a || !b) return a === b ? [] : [`${where}: ${a ? 'not documented' : 'documented but not declared'}`];
  const differences: string[] = [];
  const options = (node: Json): unknown[] | undefined => (node.anyOf ?? node.oneOf) as unknown[] | undefined;
  const [optionsA, optionsB] = [options(a), options(b)];
  if (optionsA || optionsB) {
    if (optionsA?.length !== optionsB?.length || !optionsA || !optionsB) return [`${where}: union options differ`];
    return optionsA.flatMap((option, i) => schemaDifferences(option, optionsB[i], `${where}|${i}`));
  }
  const types = (node: Json): string | undefined => (node.type === undefined ? undefined : [node.type].flat().map(String).sort().join(','));
  if (types(a) !== undefined && types(b) !== undefined && types(a) !== types(b)) differences.push(`${where}: type ${types(a)} vs ${types(b)}`);
  const sorted = (value: unknown): string => JSON.stringify(Array.isArray(value) ? [...(value as unknown[])].map(String).sort() : []);
  if (a.enum !== undefined || b.enum !== undefined) if (sorted(a.enum) !== sorted(b.enum)) differences.push(`${where}: enum values differ`);
  if (a.properties || b.properties) {
    const propertiesA = (a.properties ?? {}) as Json;
    const propertiesB = (b.properties ?? {}) as Json;
    if (sorted(Object.keys(propertiesA)) !== sorted(Object.keys(propertiesB))) differences.push(`${where}: properties ${Object.keys(propertiesA).join(',')} vs ${Object.keys(propertiesB).join(',')}`);
    if (sorted(a.required) !== sorted(b.required)) differences.push(`${where}: required ${sorted(a.required)} vs ${sorted(b.required)}`);
    if ((a.additionalProperties === false) !== (b.additionalProperties === false)) differences.push(`${where}: additionalProperties differ`);
    for (const name of Object.keys(propertiesA)) if (name in propertiesB) differences.push(...schemaDifferences(propertiesA[name], propertiesB[name], `${where}.${name}`));
  }
  if (a.items || b.items) differences.push(...schemaDifferences(a.items, b.items, `${where}[]`));
  return differences;
}
