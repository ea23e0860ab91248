/**
 * Reading and checking request input before a route's handler runs: the JSON body (content type,
 * size, strict UTF-8), zod schemas with one error mapping, and the one-pass check of the large
 * arrays of strings-or-nulls.
 *
 * No message built here quotes caller input. zod's own wording can (`Unrecognized key: "<the key>"`),
 * so every issue is worded from its code and our schema's path only, and a path segment is printed
 * only when it is a key our schema declares (an unknown key or a record key is the caller's).
 */
import { z } from 'zod';
import type { Nullable } from '../engine/engine.ts';
import { RequestError, type ItemProblem } from '../errors.ts';
import type { CoreRequest } from './types.ts';

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The request's media type, lower case, without parameters. */
export function mediaTypeOf(request: CoreRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Content type 415 (naming the types the route takes), size 413, strict UTF-8 JSON 400, in that order. */
export function readJson(request: CoreRequest, maxBodyBytes: number, accepted: readonly string[] = ['application/json']): unknown {
  if (mediaTypeOf(request) !== 'application/json') throw new RequestError('unsupported-media-type', `send the body as ${accepted.join(' or ')}`);
  const body = request.body ?? Buffer.alloc(0);
  if (body.length > maxBodyBytes) throw new RequestError('payload-too-large', `the body is larger than ${maxBodyBytes} bytes`);
  try {
    // Invalid UTF-8 must not turn into U+FFFD silently: two different inputs would share a pseudonym.
    return JSON.parse(STRICT_UTF8.decode(body));
  } catch {
    // JSON.parse's own message quotes the input: never pass it on.
    throw new RequestError('malformed-json', 'the body is not valid UTF-8 JSON');
  }
}

/**
 * The rule an issue breaks, from its code and the schema's own limits. Passed to zod as the
 * parse-level error map: a message a schema sets itself (ours, naming no input) still wins.
 */
function ruleOf(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.expected === 'nonoptional' || issue.input === undefined) return 'is required';
      return `must be ${issue.expected === 'object' ? 'a JSON object' : issue.expected === 'array' ? 'an array' : `a ${issue.expected}`}`;
    case 'unrecognized_keys':
      return 'has fields this operation does not take';
    case 'invalid_value':
      return `one of ${issue.values.map(String).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'array') return Number(issue.minimum) === 1 ? 'at least one item' : `at least ${issue.minimum} items`;
      return 'is too small';
    case 'too_big':
      return issue.origin === 'array' ? `at most ${issue.maximum} items` : 'is too large';
    case 'invalid_format':
      return 'does not have the expected format';
    case 'invalid_union':
      return 'matches none of the accepted shapes';
    default:
      return 'is not valid';
  }
}

/** Every object key a schema declares, at any depth: the path segments that may be printed. */
export function declaredKeys(schema: z.core.$ZodType): ReadonlySet<string> {
  const keys = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      const entries: [string, unknown][] = Object.entries(node);
      for (const [name, value] of entries) {
        if (name === 'properties' && value && typeof value === 'object') for (const key of Object.keys(value)) keys.add(key);
        visit(value);
      }
    }
  };
  visit(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }));
  return keys;
}

/** `subjects[0].value`; a segment the schema does not declare is shown as `*`. */
function pathOf(path: readonly PropertyKey[], known: ReadonlySet<string>, root: string): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += `${out ? '.' : ''}${typeof segment === 'string' && known.has(segment) ? segment : '*'}`;
  }
  return out || root;
}

/** A validator for one schema: its data, or a 400 naming the field and the rule, never the input. */
export function validator<S extends z.core.$ZodType>(schema: S, root: 'body' | 'query'): (input: unknown) => z.output<S> {
  const known = declaredKeys(schema);
  return (input) => {
    const parsed = z.safeParse(schema, input, { error: ruleOf });
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    throw new RequestError('validation-failed', `${pathOf(issue.path, known, root)}: ${issue.message}`);
  };
}

/** A JSON array of strings and nulls, checked in one pass (zod per item costs more than the encryption). */
export function stringsOrNulls(value: unknown, field: string, maxItems: number): Nullable<string>[] {
  if (!Array.isArray(value)) throw new RequestError('validation-failed', `${field}: must be an array of strings or nulls`);
  if (value.length > maxItems) throw new RequestError('validation-failed', `${field}: at most ${maxItems} items per request`);
  const problems: ItemProblem[] = [];
  for (let i = 0; i < value.length && problems.length < 20; i++) {
    const item: unknown = value[i];
    if (item !== null && typeof item !== 'string') problems.push({ index: i, reason: 'must be a string or null' });
  }
  if (problems.length > 0) throw new RequestError('validation-failed', `${field}: every item must be a string or null`, problems);
  return value as Nullable<string>[];
}
