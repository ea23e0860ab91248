/**
 * Per-context policy: which transform a context gets. Read from a JSON file at start-up
 * (config/policies.json by default), validated once; an unknown context is rejected unless the
 * file names an explicit default policy.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, RequestError } from '../errors.ts';
import { ALPHABETS, minimumLength, type AlphabetName } from '../engine/ff1.ts';

/** Contexts appear in pseudonym inputs, metrics and config: a short, plain name. */
export const CONTEXT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

const alphabetSchema = z.union([
  z.enum(Object.keys(ALPHABETS) as [AlphabetName, ...AlphabetName[]]),
  z.object({ custom: z.string().min(2).max(256) }),
]);

const policySchema = z.discriminatedUnion('transform', [
  z.object({ transform: z.literal('deterministic') }).strict(),
  z.object({ transform: z.literal('hash') }).strict(),
  z
    .object({
      transform: z.literal('fpe'),
      alphabet: alphabetSchema,
      maxLength: z.number().int().min(2).max(256).default(64),
    })
    .strict(),
]);

const policyFileSchema = z
  .object({
    contexts: z.record(z.string().regex(CONTEXT_PATTERN, 'context names are 1-64 of A-Z a-z 0-9 _ . : -'), policySchema),
    unknownContexts: z.union([z.literal('reject'), policySchema]).default('reject'),
  })
  .strict();

export type ContextPolicy =
  | { readonly transform: 'deterministic' }
  | { readonly transform: 'hash' }
  | { readonly transform: 'fpe'; readonly alphabet: string; readonly maxLength: number };

export class PolicySet {
  private readonly contexts: ReadonlyMap<string, ContextPolicy>;
  private readonly fallback: ContextPolicy | undefined;

  constructor(contexts: ReadonlyMap<string, ContextPolicy>, fallback: ContextPolicy | undefined) {
    this.contexts = contexts;
    this.fallback = fallback;
  }

  /** The policy for a context, or a 400-class error naming the rule. */
  resolve(context: string): ContextPolicy {
    const policy = this.contexts.get(context);
    if (policy) return policy;
    if (!CONTEXT_PATTERN.test(context)) {
      throw new RequestError('validation-failed', 'context must be 1-64 characters of A-Z a-z 0-9 _ . : - starting with a letter or digit');
    }
    if (this.fallback) return this.fallback;
    throw new RequestError('unknown-context', 'the context is not configured, and unknown contexts are rejected');
  }

  isKnown(context: string): boolean {
    return this.contexts.has(context);
  }

  static parse(json: unknown, where: string): PolicySet {
    const parsed = policyFileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ConfigError(`${where}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
    }
    const toPolicy = (p: z.infer<typeof policySchema>, name: string): ContextPolicy => {
      if (p.transform !== 'fpe') return p;
      const alphabet = typeof p.alphabet === 'string' ? ALPHABETS[p.alphabet] : p.alphabet.custom;
      // Array.from splits by code point, as the FF1 alphabet does.
      const characters = Array.from(alphabet);
      if (new Set(characters).size !== characters.length) throw new ConfigError(`${where}: ${name}: the alphabet repeats a character`);
      if (minimumLength(characters.length) > p.maxLength) throw new ConfigError(`${where}: ${name}: maxLength is below FF1's minimum length`);
      return { transform: 'fpe', alphabet, maxLength: p.maxLength };
    };
    const contexts = new Map(Object.entries(parsed.data.contexts).map(([name, p]) => [name, toPolicy(p, `contexts.${name}`)]));
    const fallback = parsed.data.unknownContexts === 'reject' ? undefined : toPolicy(parsed.data.unknownContexts, 'unknownContexts');
    return new PolicySet(contexts, fallback);
  }

  static fromFile(path: string): PolicySet {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new ConfigError(`PSEUDO_POLICY_FILE: cannot read ${path}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ConfigError(`PSEUDO_POLICY_FILE: ${path} is not valid JSON`);
    }
    return PolicySet.parse(json, path);
  }
}
