/**
 * What a route declares, and `defineRoute`, which turns a declaration into the form the core runs.
 *
 * A declaration states method, path, role (or public), where the context an API key may be scoped to
 * comes from, the query and body schemas (zod), the large strings-or-nulls array checked in one pass
 * instead of by zod, and the response schema. The core (handler.ts) does authenticate → authorize →
 * read JSON → validate → context scope → items, in that order, before the handler, which receives
 * typed data only. api/openapi.json is checked against these declarations (test/api/openapi.test.ts).
 */
import { z } from 'zod';
import type { AuditEvent } from '../audit/auditLog.ts';
import type { Principal, Role } from '../auth/roles.ts';
import type { Nullable, PackedTexts } from '../engine/engine.ts';
import type { PseudonymizationService } from '../service.ts';
import { acceptsArrow, ARROW_STREAM, packedStrings, readArrowColumn, type ArrowStringColumn } from './arrow.ts';
import type { CoreRequest, CoreResponse } from './types.ts';
import { mediaTypeOf, readJson, stringsOrNulls, validator } from './validation.ts';

/** The body formats a route reads: JSON always; Arrow IPC where the route declares `body.arrow`. */
export type BodyFormat = 'application/json' | typeof ARROW_STREAM;

/** What a handler gets: checked input and the request's own facts. */
export interface RouteInput<Body, Query> {
  readonly service: PseudonymizationService;
  readonly request: CoreRequest;
  readonly requestId: string;
  /** Path parameters of a templated route, e.g. {id}. */
  readonly params: Readonly<Record<string, string>>;
  /** Who called; undefined on public routes. */
  readonly principal: Principal | undefined;
  readonly body: Body;
  readonly query: Query;
  /**
   * The checked strings-or-nulls array of a batch route (empty elsewhere), and the field it came in. With an Arrow
   * body the strings are made when this is first read: a handler that takes `packedItems` never makes them.
   */
  readonly items: Nullable<string>[];
  /** With an Arrow body: the items as the column's UTF-8 buffers (checked as `items` is). */
  readonly packedItems: PackedTexts | undefined;
  readonly itemsField: string;
  /** The context the route works on, when it has one (already checked against the caller's scope). */
  readonly contextName: string | undefined;
  /** For a public route that establishes who the caller is (sign-in): names them in the log line. */
  readonly identify: (principal: Principal) => void;
  /** How to answer: Arrow IPC when the route takes Arrow and `Accept` names it, else JSON. */
  readonly answerFormat: BodyFormat;
}

export interface RouteDeclaration<Body, Query> {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The role the caller must hold, or `public`. */
  readonly role: Role | 'public';
  /**
   * Where the context comes from that an API key's context scope applies to: the body's `context`
   * field, the configured compatibility context, or the path's {context} segment. Absent: the route works on no context.
   */
  readonly scope?: 'body-context' | 'compat-context' | 'path-context';
  /** Checked after authorization and before the body is read: a feature that is not configured (404) or keys not loaded (503) answer here. */
  readonly requires?: (service: PseudonymizationService) => Promise<void> | void;
  /** Query parameters; unknown ones are ignored. Checked before the body. */
  readonly query?: z.ZodType<Query>;
  readonly body?: {
    /** The body as documented. */
    readonly schema: z.ZodType<Body>;
    /**
     * Fields holding the one large array of strings-or-nulls (the first present one is used, else the
     * first named). zod per item costs more than the encryption: zod takes them as they are, and a
     * one-pass check runs after the context scope, with the PSEUDO_MAX_VALUES limit.
     */
    readonly items?: readonly string[];
    /**
     * The same operation also takes an Arrow IPC stream (application/vnd.apache.arrow.stream, api/http/arrow.ts)
     * of one UTF-8 column as the items, with the body's other fields from the query string, checked by this
     * schema (query strings carry text: flags and numbers are parsed here). Values never travel in a URL.
     */
    readonly arrow?: { readonly fields: z.ZodType<Partial<Body>> };
  };
  /**
   * The largest body this route reads, checked before JSON parsing (413). Default: the configured
   * PSEUDO_MAX_BODY_BYTES, or PUBLIC_MAX_BODY_BYTES on a public route, so nobody unauthenticated gets
   * megabytes parsed. The configured limit still caps it.
   */
  readonly maxBodyBytes?: number;
  /** The 2xx body, where it is cheap to state; the OpenAPI test compares it with the document. */
  readonly response?: z.ZodType;
  /** Reidentify routes write an audit entry for every outcome, denials included. */
  readonly audited?: boolean;
  /** The audit entry's action (default `reidentify`). */
  readonly auditAction?: AuditEvent['action'];
  readonly handler: (input: RouteInput<Body, Query>) => Promise<CoreResponse> | CoreResponse;
}

/** The core's view of a route: its declaration without the types, and a way to run it. */
export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly role: Role | 'public';
  readonly scope: 'body-context' | 'compat-context' | 'path-context' | undefined;
  readonly audited: boolean;
  readonly auditAction: AuditEvent['action'];
  readonly requires: ((service: PseudonymizationService) => Promise<void> | void) | undefined;
  readonly querySchema: z.ZodType | undefined;
  readonly bodySchema: z.ZodType | undefined;
  readonly itemFields: readonly string[];
  /** The body formats the route reads (and answers in); the OpenAPI document lists each. */
  readonly bodyFormats: readonly BodyFormat[];
  /** The query parameters that carry the body's other fields with an Arrow body. */
  readonly arrowFieldsSchema: z.ZodType | undefined;
  readonly responseSchema: z.ZodType | undefined;
  /** The route's own body limit (undefined: the configured one); bodyLimit() applies both. */
  readonly maxBodyBytes: number | undefined;
  /** Reads and checks the query and body, then returns the context to scope-check and the rest of the run. */
  accept(request: CoreRequest, service: PseudonymizationService, params: Readonly<Record<string, string>>): Accepted;
}

export interface Accepted {
  readonly contextName: string | undefined;
  /** The one-pass item check; returns how many values the request carries. */
  checkItems(): number;
  run(facts: Omit<RouteInput<never, never>, 'body' | 'query' | 'items' | 'packedItems' | 'itemsField' | 'contextName' | 'answerFormat'>): Promise<CoreResponse>;
}

/** The schema zod runs: the documented one with the item fields taken as they are (checked in one pass later). */
function withUncheckedItems(schema: z.core.$ZodType, fields: readonly string[]): z.core.$ZodType {
  if (fields.length === 0) return schema;
  if (schema instanceof z.ZodObject) {
    const present = fields.filter((field) => field in schema.shape);
    return schema.extend(Object.fromEntries(present.map((field) => [field, z.unknown()])));
  }
  // A union keeps its own message (clone keeps the definition, options swapped).
  if (schema instanceof z.ZodUnion) return schema.clone({ ...schema.def, options: schema.options.map((option) => withUncheckedItems(option, fields)) });
  return schema;
}

/** A public route's body limit unless it declares its own: a sign-in body is a few hundred bytes. */
export const PUBLIC_MAX_BODY_BYTES = 4 * 1024;

/** The most a route reads: its own limit, capped by the configured PSEUDO_MAX_BODY_BYTES. */
export function bodyLimit(route: Pick<Route, 'maxBodyBytes'>, configuredMaxBodyBytes: number): number {
  return Math.min(route.maxBodyBytes ?? configuredMaxBodyBytes, configuredMaxBodyBytes);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function defineRoute<Body = undefined, Query = undefined>(declaration: RouteDeclaration<Body, Query>): Route {
  const itemFields = declaration.body?.items ?? [];
  const checkQuery = declaration.query ? validator(declaration.query, 'query') : undefined;
  const checkBody = declaration.body ? validator(withUncheckedItems(declaration.body.schema, itemFields), 'body') : undefined;
  const maxBodyBytes = declaration.maxBodyBytes ?? (declaration.role === 'public' ? PUBLIC_MAX_BODY_BYTES : undefined);
  const arrowFields = declaration.body?.arrow?.fields;
  const checkArrowFields = arrowFields ? validator(arrowFields, 'query') : undefined;
  const bodyFormats: readonly BodyFormat[] = arrowFields ? ['application/json', ARROW_STREAM] : ['application/json'];
  return {
    method: declaration.method,
    path: declaration.path,
    role: declaration.role,
    scope: declaration.scope,
    audited: declaration.audited ?? false,
    auditAction: declaration.auditAction ?? 'reidentify',
    requires: declaration.requires,
    querySchema: declaration.query,
    bodySchema: declaration.body?.schema,
    itemFields,
    bodyFormats,
    arrowFieldsSchema: arrowFields,
    responseSchema: declaration.response,
    maxBodyBytes,
    accept(request, service, params) {
      const query = checkQuery ? checkQuery(request.query) : undefined;
      const limit = bodyLimit({ maxBodyBytes }, service.config.limits.maxBodyBytes);
      let raw: unknown;
      let arrowColumn: ArrowStringColumn | undefined;
      if (checkArrowFields && mediaTypeOf(request) === ARROW_STREAM) {
        raw = checkArrowFields(request.query);
        arrowColumn = readArrowColumn(request.body, limit);
      } else {
        raw = checkBody ? checkBody(readJson(request, limit, bodyFormats)) : undefined;
      }
      const answerFormat: BodyFormat = checkArrowFields && acceptsArrow(request.headers.accept) ? ARROW_STREAM : 'application/json';
      let contextName: string | undefined;
      if (declaration.scope === 'compat-context') contextName = service.config.compatContext;
      else if (declaration.scope === 'path-context') contextName = params.context;
      else if (declaration.scope === 'body-context' && isObject(raw) && typeof raw.context === 'string') contextName = raw.context;
      const itemsField = (isObject(raw) ? itemFields.find((field) => field in raw) : undefined) ?? itemFields[0] ?? '';
      let items: Nullable<string>[] = [];
      let packedItems: PackedTexts | undefined;
      return {
        contextName,
        checkItems() {
          if (arrowColumn) {
            packedItems = arrowColumn.packed(itemsField, service.config.limits.maxValues);
            return packedItems.offsets.length - 1;
          }
          if (itemFields.length > 0) items = stringsOrNulls(isObject(raw) ? raw[itemsField] : undefined, itemsField, service.config.limits.maxValues);
          return items.length;
        },
        async run(facts) {
          // The zod schema checked everything but the item fields, which checkItems has just checked.
          const input = { ...facts, body: raw as Body, query: query as Query, itemsField, contextName, answerFormat, packedItems };
          const packed = packedItems;
          if (!packed) return declaration.handler({ ...input, items });
          let strings: Nullable<string>[] | undefined;
          // Lazy: a handler that takes `packedItems` must not destructure `items` in its parameters, which would call this.
          return declaration.handler({
            ...input,
            get items() {
              return (strings ??= packedStrings(packed));
            },
          });
        },
      };
    },
  };
}
