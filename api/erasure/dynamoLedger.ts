/**
 * The erasure ledger on DynamoDB: one table shared by every process of a deployment (each Lambda instance,
 * the server, the erasure step runner). Same contract as the SQLite store (test/erasure/ledger.test.ts).
 *
 * Single-table design. Every key is a string; `pk` is the partition key, `sk` the sort key:
 *
 * | item                 | pk                      | sk                        | attributes                                            |
 * |----------------------|-------------------------|---------------------------|-------------------------------------------------------|
 * | request              | `REQUEST#<id>`          | `REQUEST`                 | the request's fields (subjects, tables, certificate   |
 * |                      |                         |                           | as JSON text), `revision` (N), `gsi1pk`, `gsi1sk`     |
 * | reference            | `REFERENCE#<reference>` | `REFERENCE`               | `requestIds` (L of S), `revision` (N)                 |
 * | erased pseudonyms    | `ERASED#<context>`      | `REQUEST#<id>`            | `pseudonyms` (SS): the request's pseudonyms there     |
 * | lift of suppression  | `LIFTS`                 | `LIFT#<createdAt>#<id>`   | the lift's fields (subjects as JSON text)             |
 * | audit chain head     | `AUDIT`                 | `HEAD`                    | `seq` (N), `hash` (S)                                 |
 * | audit entry          | `AUDIT`                 | `ENTRY#<seq, 20 digits>`  | the entry's fields, `previousHash`, `hash`            |
 *
 * Global secondary index `byStatus` (keys only): `gsi1pk` = `STATUS#<status>`, `gsi1sk` = `<createdAt>#<id>`.
 * `DYNAMO_LEDGER_TABLE` below is the definition, for `ensureTable` and for the CloudFormation template.
 *
 * Why each write holds:
 * - **One request per reference.** Filing reads the reference item, looks for the same request among those
 *   already filed under it (the caller's `isSame`), and otherwise writes, in ONE TransactWriteItems, the
 *   request (if absent), the reference item (conditional on the revision it read) and the audit entry. Two
 *   instances filing the same reference at once: one transaction wins, the other's condition fails, it reads
 *   again, finds the winner's request and returns it (created: false).
 * - **The audit chain never forks.** Every transaction that writes an entry also updates the head item on the
 *   condition that its hash is still the one the new entry links to (absent for the first entry). Two writers
 *   computing the same next entry: one commits, the other re-reads the head and links after it.
 * - **The state machine.** A transition reads the request, checks the move (`ERASURE_TRANSITIONS`: terminal
 *   states never move), and writes on the condition that the request's revision is still the one read; a
 *   concurrent move makes it fail with `ledger-conflict` rather than apply twice. A change that is no move (pseudonyms
 *   added, an extension) also fails the condition: the transition then reads again and, status and run being as it
 *   first read them, rebuilds its item from that read (keeping what the other writer wrote) and writes again (bounded).
 * - **A lift** reads the audit head first, then the `ERASED#<context>` items and the requests they belong to,
 *   and writes in ONE transaction the removal of the lifted pseudonyms from those items, the lift item and its
 *   audit entry, on the head's condition. Every filing and every move also moves the head, so a filing or a move
 *   that commits after the lift's reads cancels the lift, which reads again: the latest event wins.
 * - **Pseudonyms added after a rotation** (`addPseudonyms`) are written like a lift: the head read first, then the
 *   request and the erased items; the request's subjects on its revision, the new pseudonyms ADDed to the request's
 *   `ERASED#<context>` items and the audit entry on the head's condition, in one transaction. A lift committing in
 *   between moves the head and the addition reads again, so a lifted subject is never suppressed again by it.
 * - **The suppression lookup** is one strongly consistent Query on `ERASED#<context>`: one item per request
 *   filing pseudonyms in that context, so the cost grows with requests in the context, not with the table.
 *
 * Limits: a request's item (subjects as JSON) and each erased-pseudonyms item stay under DynamoDB's 400 KB
 * (1,000 subjects with three key versions of ~80-character pseudonyms: ~250 KB); a filing writes 4 items plus
 * one per context (transactions take 100). Each rotation adds one pseudonym per suppressed subject (`addPseudonyms`),
 * ~85 KB for 1,000 subjects: such a request reaches the limit after a rotation or two, and the addition then fails as a
 * ledger error (keys destroy stops before destroying anything) rather than leave a subject unmatched. The audit chain
 * is one partition (writes per filing or move, not per pseudonymize call).
 *
 * Throttling (and 5xx, network errors) are retried with the project's backoff (api/retry/backoff.ts), the SDK's
 * own retries being off so the schedule is in one place; past the last attempt the call fails with
 * `ledger-unavailable`. Counters (`revision`, `seq`) are handled as decimal strings and BigInt, never through a
 * JS number that could round them.
 */
import {
  BatchGetItemCommand,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type CreateTableCommandInput,
  type QueryCommandInput,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { LedgerError, PlatformError, RequestError } from '../errors.ts';
import { backoffDelayMs, retry, sleep as realSleep, type Sleep } from '../retry/backoff.ts';
import {
  auditHash,
  checkExpected,
  checkExtendable,
  coverageAuditInput,
  liftRefused,
  mergeProgress,
  newPseudonyms,
  nextStepId,
  GENESIS_HASH,
  type AuditEntry,
  type AuditInput,
  type CoverageAudit,
  type ErasureLedger,
  type ErasureRequest,
  type ErasureStatus,
  type LiftReason,
  type LiftRefusal,
  type NewDeadlineExtension,
  type NewErasureRequest,
  type NewSuppressionLift,
  type SuppressionLift,
  type StatusChange,
  type SubjectPseudonymAddition,
  type TableProgress,
  ERASURE_STATUSES,
} from './ledger.ts';

/** Moves a request may make. `verified` and `failed` are final; `running` -> `received` is a retry. */
export const ERASURE_TRANSITIONS: Readonly<Record<ErasureStatus, readonly ErasureStatus[]>> = {
  received: ['received', 'running'],
  running: ['running', 'received', 'verified', 'failed'],
  verified: [],
  failed: [],
};

/** The table's key schema and index, for `ensureTable` and for infrastructure templates to copy. */
export const DYNAMO_LEDGER_TABLE: Omit<CreateTableCommandInput, 'TableName'> = {
  AttributeDefinitions: [
    { AttributeName: 'pk', AttributeType: 'S' },
    { AttributeName: 'sk', AttributeType: 'S' },
    { AttributeName: 'gsi1pk', AttributeType: 'S' },
    { AttributeName: 'gsi1sk', AttributeType: 'S' },
  ],
  KeySchema: [
    { AttributeName: 'pk', KeyType: 'HASH' },
    { AttributeName: 'sk', KeyType: 'RANGE' },
  ],
  GlobalSecondaryIndexes: [
    {
      IndexName: 'byStatus',
      KeySchema: [
        { AttributeName: 'gsi1pk', KeyType: 'HASH' },
        { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'KEYS_ONLY' },
    },
  ],
  BillingMode: 'PAY_PER_REQUEST',
};

export interface DynamoLedgerOptions {
  readonly table: string;
  readonly region: string;
  /** A local endpoint (moto); unset on AWS. */
  readonly endpoint?: string | undefined;
  /** A client to use instead of one built from region and endpoint (tests add middleware to it). */
  readonly client?: DynamoDBClient;
  /** Throttling retries: attempts in all, and the backoff between them. */
  readonly retry?: { readonly maxAttempts?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number; readonly sleep?: Sleep };
}

type Item = Record<string, AttributeValue>;

const AUDIT_HEAD_KEY: Item = { pk: { S: 'AUDIT' }, sk: { S: 'HEAD' } };
/** Transactions lost to another writer (reference or audit head moved) are redone this often at most. */
const MAX_CONFLICT_ROUNDS = 50;
/** Between rounds lost to another writer: jittered, growing from 10 ms to 200 ms. */
const CONFLICT_BACKOFF = { baseDelayMs: 5, maxDelayMs: 200 } as const;
/** Polling a table being created until it is active: 100 ms doubling to 1 s. */
const TABLE_POLL = { baseDelayMs: 50, maxDelayMs: 1000, jitter: 'none' } as const;

/** Fresh reads a transition makes when the request changed under it without moving (then ledger-conflict). */
const MAX_REVISION_RETRIES = 8;
/** Items a lift may change besides its own item and the two audit items (a transaction takes 100). */
const MAX_LIFT_ITEMS = 97;
const THROTTLING = new Set(['ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'ThrottlingError', 'ProvisionedThroughputExceeded']);

/** A transaction that DynamoDB cancelled; `reasons[i]` is the code for the i-th item ('None' when it was not the cause). */
class Cancelled extends Error {
  constructor(readonly reasons: readonly string[]) {
    super('transaction cancelled');
  }
}

export class DynamoErasureLedger implements ErasureLedger {
  readonly description: string;
  private readonly client: DynamoDBClient;
  private readonly table: string;
  private readonly retryOptions: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; sleep: Sleep };

  constructor(options: DynamoLedgerOptions) {
    this.table = options.table;
    this.description = `DynamoDB ledger table ${options.table}`;
    // maxAttempts 1: the SDK does not retry on its own; `call` does, with the project's backoff.
    this.client = options.client ?? new DynamoDBClient({ region: options.region, endpoint: options.endpoint, maxAttempts: 1 });
    this.retryOptions = {
      maxAttempts: options.retry?.maxAttempts ?? 6,
      baseDelayMs: options.retry?.baseDelayMs ?? 50,
      maxDelayMs: options.retry?.maxDelayMs ?? 2000,
      sleep: options.retry?.sleep ?? realSleep,
    };
  }

  async create(request: NewErasureRequest, audit: AuditInput, isSame?: (existing: ErasureRequest) => boolean): Promise<{ request: ErasureRequest; created: boolean }> {
    const referenceKey: Item = { pk: { S: `REFERENCE#${request.reference}` }, sk: { S: 'REFERENCE' } };
    for (let round = 1; ; round++) {
      const reference = await this.getItem(referenceKey);
      const filedIds = (reference?.requestIds?.L ?? []).map((v) => v.S ?? '');
      if (isSame && filedIds.length > 0) {
        const filed = (await this.getRequests(filedIds)).sort(byCreation);
        const existing = filed.find(isSame);
        if (existing) return { request: existing, created: false };
      }
      const now = new Date().toISOString();
      const created: ErasureRequest = { ...request, status: 'received', attempts: 0, createdAt: now, updatedAt: now };
      const items: TransactWriteItem[] = [
        { Put: { TableName: this.table, Item: { ...requestKey(request.id), ...toItem(created, '1') }, ConditionExpression: 'attribute_not_exists(pk)' } },
        reference
          ? {
              Update: {
                TableName: this.table,
                Key: referenceKey,
                UpdateExpression: 'SET requestIds = list_append(requestIds, :id), revision = :next',
                ConditionExpression: 'revision = :seen',
                ExpressionAttributeValues: { ':id': { L: [{ S: request.id }] }, ':seen': numberAttribute(reference, 'revision'), ':next': { N: increment(numberText(reference, 'revision')) } },
              },
            }
          : { Put: { TableName: this.table, Item: { ...referenceKey, requestIds: { L: [{ S: request.id }] }, revision: { N: '1' } }, ConditionExpression: 'attribute_not_exists(pk)' } },
        ...erasedItems(request).map((item): TransactWriteItem => ({ Put: { TableName: this.table, Item: item } })),
        ...(await this.auditItems(audit, now)),
      ];
      try {
        await this.transact(items);
        return { request: created, created: true };
      } catch (error) {
        if (!(error instanceof Cancelled)) throw error;
        if (error.reasons[0] === 'ConditionalCheckFailed') throw new LedgerError('an erasure request with this id already exists', 'ledger-conflict');
        // The reference or the audit head moved under us: read again (the other filing may be the same request).
        await this.conflictPause(round);
      }
    }
  }

  async get(id: string): Promise<ErasureRequest | undefined> {
    const item = await this.getItem(requestKey(id));
    return item ? fromItem(item) : undefined;
  }

  async list(status?: ErasureStatus): Promise<ErasureRequest[]> {
    const statuses = status ? [status] : ERASURE_STATUSES;
    const ids: string[] = [];
    for (const wanted of statuses) {
      const items = await this.queryAll({
        IndexName: 'byStatus',
        KeyConditionExpression: 'gsi1pk = :status',
        ExpressionAttributeValues: { ':status': { S: `STATUS#${wanted}` } },
      });
      for (const item of items) ids.push(stringOf(item, 'pk').slice('REQUEST#'.length));
    }
    // The index is eventually consistent: the items themselves are read strongly and a request that has
    // moved on since is left out (it shows up under its new state at the next call).
    const requests = await this.getRequests(ids);
    return requests.filter((r) => statuses.includes(r.status)).sort(byCreation);
  }

  async transition(id: string, change: StatusChange, audit: AuditInput): Promise<ErasureRequest> {
    // A write that loses to a change leaving status and run as first read (pseudonyms added by coverage, an
    // extension) is rebuilt from a fresh read, keeping what that change wrote, and retried; only a real move of the
    // request (or a failed `expected`) is a ledger-conflict.
    let firstRead: { readonly status: ErasureStatus; readonly runId: string | undefined } | undefined;
    let revisionRetries = 0;
    for (let round = 1; ; round++) {
      const item = await this.getItem(requestKey(id));
      if (!item) throw new PlatformError('not-found', 'no erasure request with this id');
      const current = fromItem(item);
      if (!ERASURE_TRANSITIONS[current.status].includes(change.status)) {
        throw new LedgerError(`an erasure request cannot move from ${current.status} to ${change.status}`, 'ledger-conflict');
      }
      checkExpected(current, change);
      firstRead ??= { status: current.status, runId: current.runId };
      if (current.status !== firstRead.status || current.runId !== firstRead.runId) {
        throw new LedgerError('the erasure request was moved by another writer meanwhile', 'ledger-conflict');
      }
      const now = new Date().toISOString();
      const next: ErasureRequest = {
        ...current,
        status: change.status,
        attempts: change.attempts ?? current.attempts,
        tables: change.tables ?? current.tables,
        runId: change.runId ?? current.runId,
        stepId: nextStepId(current, change),
        error: change.error,
        certificate: change.certificate === undefined ? current.certificate : change.certificate,
        updatedAt: now,
      };
      const revision = numberText(item, 'revision');
      const items: TransactWriteItem[] = [
        {
          Put: {
            TableName: this.table,
            Item: { ...requestKey(id), ...toItem(next, increment(revision)) },
            ConditionExpression: 'revision = :seen',
            ExpressionAttributeValues: { ':seen': { N: revision } },
          },
        },
        ...(await this.auditItems(audit, now)),
      ];
      try {
        await this.transact(items);
        return next;
      } catch (error) {
        if (!(error instanceof Cancelled)) throw error;
        if (error.reasons[0] === 'ConditionalCheckFailed') {
          // The request changed since the read: read it again; the checks above refuse the move if it was moved.
          if (++revisionRetries >= MAX_REVISION_RETRIES) throw new LedgerError('the erasure request kept changing under this move', 'ledger-conflict');
          await this.retryOptions.sleep(backoffDelayMs(revisionRetries, this.retryOptions));
          continue;
        }
        await this.conflictPause(round); // only the audit head moved: link after the new head
      }
    }
  }

  /** Like a transition: read, check, and write on the revision read, with the audit entry in the same transaction. */
  async extend(id: string, extension: NewDeadlineExtension, audit: AuditInput): Promise<ErasureRequest> {
    for (let round = 1; ; round++) {
      const item = await this.getItem(requestKey(id));
      if (!item) throw new PlatformError('not-found', 'no erasure request with this id');
      const current = fromItem(item);
      checkExtendable(current);
      const now = new Date().toISOString();
      const revision = numberText(item, 'revision');
      const items: TransactWriteItem[] = [
        {
          // An update of the one attribute (not a put of the item read): progress written meanwhile (updateTables) stays.
          // updatedAt stays too: it says when the erasure last moved, and an extension is no move.
          Update: {
            TableName: this.table,
            Key: requestKey(id),
            UpdateExpression: 'SET extension = :extension, revision = :next',
            ConditionExpression: 'revision = :seen AND attribute_not_exists(extension)',
            ExpressionAttributeValues: { ':extension': { S: JSON.stringify({ ...extension, at: now }) }, ':seen': { N: revision }, ':next': { N: increment(revision) } },
          },
        },
        ...(await this.auditItems(audit, now)),
      ];
      try {
        await this.transact(items);
        const extended = await this.getItem(requestKey(id));
        if (!extended) throw new PlatformError('not-found', 'no erasure request with this id');
        return fromItem(extended);
      } catch (error) {
        if (!(error instanceof Cancelled)) throw error;
        // Another writer moved or extended the request: read it again, and check again (a second extension is refused).
        await this.conflictPause(round);
      }
    }
  }

  /**
   * Read, merge forward-only, and write conditionally on the request still running in `runId` at the revision read
   * with the very tables read (compare-and-set): two reports racing each other merge one after the other, and a late
   * one of an earlier run, or one after the outcome was written, is dropped. The revision is not moved: progress is
   * no state change, and a move racing it must not be refused for it (the move writes its own tables).
   */
  async updateTables(id: string, runId: string, tables: readonly TableProgress[]): Promise<void> {
    for (let round = 1; ; round++) {
      const item = await this.getItem(requestKey(id));
      if (!item) return;
      const current = fromItem(item);
      if (current.status !== 'running' || current.runId !== runId) return;
      const merged = JSON.stringify(mergeProgress(current.tables, tables));
      const seenTables = stringOf(item, 'tables');
      if (merged === seenTables) return;
      try {
        await this.call(() =>
          this.client.send(
            new UpdateItemCommand({
              TableName: this.table,
              Key: requestKey(id),
              UpdateExpression: 'SET #tables = :tables, updatedAt = :now',
              ConditionExpression: 'revision = :seen AND #status = :running AND runId = :run AND #tables = :seenTables',
              ExpressionAttributeNames: { '#tables': 'tables', '#status': 'status' },
              ExpressionAttributeValues: {
                ':tables': { S: merged },
                ':now': { S: new Date().toISOString() },
                ':seen': { N: numberText(item, 'revision') },
                ':running': { S: 'running' },
                ':run': { S: runId },
                ':seenTables': { S: seenTables },
              },
            }),
          ),
        );
        return;
      } catch (error) {
        if (errorName(error) !== 'ConditionalCheckFailedException') throw error;
        await this.conflictPause(round); // moved, or another report came first: read again and merge onto it
      }
    }
  }

  async erasedPseudonyms(context: string): Promise<ReadonlySet<string>> {
    const erased = new Set<string>();
    for (const item of await this.erasedItems(context, 'pseudonyms')) for (const pseudonym of item.pseudonyms?.SS ?? []) erased.add(pseudonym);
    return erased;
  }

  async lift(lift: NewSuppressionLift, audit: AuditInput): Promise<SuppressionLift> {
    for (let round = 1; ; round++) {
      // The head first: anything that commits after these reads moves it, and the lift's condition then fails.
      const head = await this.getItem(AUDIT_HEAD_KEY);
      const byContext = new Map<string, Item[]>();
      for (const context of new Set(lift.subjects.map((s) => s.context))) byContext.set(context, await this.erasedItems(context));
      const removals = new Map<Item, Set<string>>();
      const found = lift.subjects.map((subject) => {
        const items = (byContext.get(subject.context) ?? []).filter((item) => subject.pseudonyms.some((p) => item.pseudonyms?.SS?.includes(p)));
        for (const item of items) {
          let removed = removals.get(item);
          if (!removed) removals.set(item, (removed = new Set()));
          for (const pseudonym of subject.pseudonyms) if (item.pseudonyms?.SS?.includes(pseudonym)) removed.add(pseudonym);
        }
        return items.map((item) => stringOf(item, 'sk').slice('REQUEST#'.length));
      });
      const statuses = new Map((await this.getRequests([...new Set(found.flat())])).map((r) => [r.id, r.status]));
      const refusals: LiftRefusal[] = found.flatMap((ids, index): LiftRefusal[] => {
        if (ids.length === 0) return [{ index, reason: 'not-suppressed' }];
        return ids.some((id) => statuses.get(id) === 'received' || statuses.get(id) === 'running') ? [{ index, reason: 'erasure-pending' }] : [];
      });
      if (refusals.length > 0) throw liftRefused(refusals);
      if (removals.size > MAX_LIFT_ITEMS) throw new RequestError('validation-failed', 'subjects: filed under too many requests to lift in one call; lift fewer subjects at a time');
      const createdAt = new Date().toISOString();
      const lifted: SuppressionLift = { ...lift, createdAt };
      const items: TransactWriteItem[] = [
        ...[...removals].map(([item, pseudonyms]): TransactWriteItem => ({
          Update: {
            TableName: this.table,
            Key: { pk: { S: stringOf(item, 'pk') }, sk: { S: stringOf(item, 'sk') } },
            UpdateExpression: 'DELETE pseudonyms :lifted',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':lifted': { SS: [...pseudonyms] } },
          },
        })),
        {
          Put: {
            TableName: this.table,
            Item: {
              pk: { S: 'LIFTS' },
              sk: { S: `LIFT#${createdAt}#${lift.id}` },
              id: { S: lift.id },
              reference: { S: lift.reference },
              reason: { S: lift.reason },
              liftedBy: { S: lift.liftedBy },
              createdAt: { S: createdAt },
              subjects: { S: JSON.stringify(lift.subjects) },
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...(await this.auditItems(audit, createdAt, { head })),
      ];
      try {
        await this.transact(items);
        return lifted;
      } catch (error) {
        if (!(error instanceof Cancelled)) throw error;
        await this.conflictPause(round); // a filing, a move or another lift came first: read again
      }
    }
  }

  /**
   * As a lift: the audit head read first, then the request and its contexts' erased items; one transaction writes the
   * request's subjects (on the revision read), adds the new pseudonyms to the request's `ERASED#<context>` items and
   * appends the audit entry on the head's condition. A lift, filing or move committing after these reads moves the
   * head, so this transaction fails and reads again: a subject lifted meanwhile gets nothing.
   */
  async addPseudonyms(id: string, additions: readonly SubjectPseudonymAddition[], audit: CoverageAudit): Promise<{ request: ErasureRequest; added: number }> {
    for (let round = 1; ; round++) {
      const head = await this.getItem(AUDIT_HEAD_KEY);
      const item = await this.getItem(requestKey(id));
      if (!item) throw new PlatformError('not-found', 'no erasure request with this id');
      const current = fromItem(item);
      const contexts = new Set(additions.flatMap((a) => (current.subjects[a.subject] ? [current.subjects[a.subject]!.context] : [])));
      const erased = new Map<string, ReadonlySet<string>>();
      for (const context of contexts) erased.set(context, await this.erasedPseudonyms(context));
      const { subjects, added } = newPseudonyms(current.subjects, additions, (subject) => subject.pseudonyms.some((p) => erased.get(subject.context)?.has(p)));
      if (added.length === 0) return { request: current, added: 0 };
      const byContext = new Map<string, Set<string>>();
      for (const { context, pseudonyms } of added) {
        let set = byContext.get(context);
        if (!set) byContext.set(context, (set = new Set()));
        for (const pseudonym of pseudonyms) set.add(pseudonym);
      }
      if (byContext.size > MAX_LIFT_ITEMS - 1) throw new RequestError('validation-failed', 'subjects: in too many contexts to extend in one transaction');
      const count = added.reduce((sum, a) => sum + a.pseudonyms.length, 0);
      const revision = numberText(item, 'revision');
      const now = new Date().toISOString();
      const items: TransactWriteItem[] = [
        {
          // updatedAt stays: it says when the erasure last moved, and this is no move.
          Update: {
            TableName: this.table,
            Key: requestKey(id),
            UpdateExpression: 'SET subjects = :subjects, revision = :next',
            ConditionExpression: 'revision = :seen',
            ExpressionAttributeValues: { ':subjects': { S: JSON.stringify(subjects) }, ':seen': { N: revision }, ':next': { N: increment(revision) } },
          },
        },
        ...[...byContext].map(([context, pseudonyms]): TransactWriteItem => ({
          // ADD to the set (creating the item when the request named no subject in the context before); a set merges duplicates.
          Update: { TableName: this.table, Key: { pk: { S: `ERASED#${context}` }, sk: { S: `REQUEST#${id}` } }, UpdateExpression: 'ADD pseudonyms :added', ExpressionAttributeValues: { ':added': { SS: [...pseudonyms] } } },
        })),
        ...(await this.auditItems(coverageAuditInput(id, audit, count, added.length), now, { head })),
      ];
      try {
        await this.transact(items);
        return { request: { ...current, subjects }, added: count };
      } catch (error) {
        if (!(error instanceof Cancelled)) throw error;
        await this.conflictPause(round); // the request, or the audit head, moved: read again (what is added by then is skipped)
      }
    }
  }

  async lifts(): Promise<SuppressionLift[]> {
    const items = await this.queryAll({
      KeyConditionExpression: 'pk = :lifts',
      ExpressionAttributeValues: { ':lifts': { S: 'LIFTS' } },
      ConsistentRead: true,
    });
    return items.map((item) => ({
      id: stringOf(item, 'id'),
      reference: stringOf(item, 'reference'),
      reason: stringOf(item, 'reason') as LiftReason,
      liftedBy: stringOf(item, 'liftedBy'),
      createdAt: stringOf(item, 'createdAt'),
      subjects: JSON.parse(stringOf(item, 'subjects')) as SuppressionLift['subjects'],
    }));
  }

  /** The `ERASED#<context>` items (one per request filing pseudonyms there), read strongly; `projection` to read fewer attributes. */
  private erasedItems(context: string, projection?: string): Promise<Item[]> {
    return this.queryAll({
      KeyConditionExpression: 'pk = :context',
      ExpressionAttributeValues: { ':context': { S: `ERASED#${context}` } },
      ...(projection ? { ProjectionExpression: projection } : {}),
      ConsistentRead: true,
    });
  }

  async auditEntries(): Promise<AuditEntry[]> {
    const items = await this.queryAll({
      KeyConditionExpression: 'pk = :audit AND begins_with(sk, :entry)',
      ExpressionAttributeValues: { ':audit': { S: 'AUDIT' }, ':entry': { S: 'ENTRY#' } },
      ConsistentRead: true,
    });
    return items.map((item) => ({
      seq: safeNumber(numberText(item, 'seq')),
      at: stringOf(item, 'at'),
      actor: stringOf(item, 'actor'),
      action: stringOf(item, 'action'),
      requestId: item.requestId?.S,
      outcome: stringOf(item, 'outcome'),
      previousHash: stringOf(item, 'previousHash'),
      hash: stringOf(item, 'hash'),
    }));
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }

  /** The head update and the entry: the head's condition is what keeps two writers from forking the chain. */
  private async auditItems(input: AuditInput, at: string, read?: { readonly head: Item | undefined }): Promise<TransactWriteItem[]> {
    // A caller that must see everything committed before its entry reads the head itself, before its other reads.
    const head = read ? read.head : await this.getItem(AUDIT_HEAD_KEY);
    const previousSeq = head ? numberText(head, 'seq') : '0';
    const previousHash = head ? stringOf(head, 'hash') : GENESIS_HASH;
    const seqText = increment(previousSeq);
    const entry = { seq: safeNumber(seqText), at, actor: input.actor, action: input.action, requestId: input.requestId, outcome: input.outcome };
    const hash = auditHash(previousHash, entry);
    const entryItem: Item = {
      pk: { S: 'AUDIT' },
      sk: { S: `ENTRY#${seqText.padStart(20, '0')}` },
      seq: { N: seqText },
      at: { S: at },
      actor: { S: input.actor },
      action: { S: input.action },
      outcome: { S: input.outcome },
      previousHash: { S: previousHash },
      hash: { S: hash },
      ...(input.requestId === undefined ? {} : { requestId: { S: input.requestId } }),
    };
    return [
      {
        Put: {
          TableName: this.table,
          Item: { ...AUDIT_HEAD_KEY, seq: { N: seqText }, hash: { S: hash } },
          ConditionExpression: head ? '#hash = :previous' : 'attribute_not_exists(pk)',
          ...(head ? { ExpressionAttributeNames: { '#hash': 'hash' }, ExpressionAttributeValues: { ':previous': { S: previousHash } } } : {}),
        },
      },
      { Put: { TableName: this.table, Item: entryItem, ConditionExpression: 'attribute_not_exists(pk)' } },
    ];
  }

  /** Every item a Query finds, page after page (each page through `call`, so throttling is retried). */
  private async queryAll(input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey'>): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await this.call(() => this.client.send(new QueryCommand({ ...input, TableName: this.table, ExclusiveStartKey: start })));
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  private async getItem(key: Item): Promise<Item | undefined> {
    const answer = await this.call(() => this.client.send(new GetItemCommand({ TableName: this.table, Key: key, ConsistentRead: true })));
    return answer.Item;
  }

  private async getRequests(ids: readonly string[]): Promise<ErasureRequest[]> {
    const found: ErasureRequest[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      let keys: Item[] = [...new Set(ids.slice(i, i + 100))].map(requestKey);
      for (let round = 1; keys.length > 0; round++) {
        const answer = await this.call(() => this.client.send(new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } })));
        for (const item of answer.Responses?.[this.table] ?? []) found.push(fromItem(item));
        keys = answer.UnprocessedKeys?.[this.table]?.Keys ?? [];
        if (keys.length > 0) {
          if (round >= this.retryOptions.maxAttempts) throw new LedgerError('the erasure ledger is throttling reads; gave up after retries');
          await this.retryOptions.sleep(backoffDelayMs(round, { ...this.retryOptions, jitter: 'none' }));
        }
      }
    }
    return found;
  }

  private async transact(items: TransactWriteItem[]): Promise<void> {
    try {
      await this.call(() => this.client.send(new TransactWriteItemsCommand({ TransactItems: items })));
    } catch (error) {
      if (errorName(error) === 'TransactionCanceledException') {
        const reasons = cancellationReasons(error);
        // A cancellation for throttling or a conflicting transaction was retried by `call`; these lost a condition.
        throw new Cancelled(reasons);
      }
      throw error;
    }
  }

  /** Another writer won this round: wait a little (jittered, growing) before reading again, or give up. */
  private async conflictPause(round: number): Promise<void> {
    if (round >= MAX_CONFLICT_ROUNDS) throw new LedgerError('the erasure ledger is too busy: the write kept losing to other writers');
    await this.retryOptions.sleep(backoffDelayMs(round + 1, CONFLICT_BACKOFF));
  }

  /** One DynamoDB call, retried while DynamoDB throttles (or fails transiently); then `ledger-unavailable`. */
  private async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await retry(operation, { ...this.retryOptions, isRetryable: isTransient });
    } catch (error) {
      const name = errorName(error);
      if (name === 'ConditionalCheckFailedException' || (name === 'TransactionCanceledException' && !isTransient(error))) throw error;
      if (isTransient(error)) throw new LedgerError(`the erasure ledger's DynamoDB table is not answering (${name}) after ${this.retryOptions.maxAttempts} attempts`);
      if (name === 'ResourceNotFoundException') throw new LedgerError("the erasure ledger's DynamoDB table does not exist");
      // Only the error's name: DynamoDB's messages can quote key values.
      throw new LedgerError(`the erasure ledger's DynamoDB call failed (${name})`);
    }
  }
}

/** Creates the table if it is missing and waits until it is active (local and development use; AWS uses the template). */
export async function ensureTable(options: { readonly table: string; readonly region: string; readonly endpoint?: string | undefined }): Promise<void> {
  const client = new DynamoDBClient({ region: options.region, endpoint: options.endpoint });
  try {
    try {
      await client.send(new CreateTableCommand({ TableName: options.table, ...DYNAMO_LEDGER_TABLE }));
    } catch (error) {
      if (errorName(error) !== 'ResourceInUseException') throw new LedgerError(`the erasure ledger's DynamoDB table cannot be created (${errorName(error)})`);
    }
    for (let round = 1; ; round++) {
      const description = await client.send(new DescribeTableCommand({ TableName: options.table }));
      if (description.Table?.TableStatus === 'ACTIVE') return;
      if (round >= 60) throw new LedgerError("the erasure ledger's DynamoDB table did not become active");
      await realSleep(backoffDelayMs(round + 1, TABLE_POLL));
    }
  } finally {
    client.destroy();
  }
}

function requestKey(id: string): Item {
  return { pk: { S: `REQUEST#${id}` }, sk: { S: 'REQUEST' } };
}

function toItem(request: ErasureRequest, revision: string): Item {
  const optional = (name: string, value: string | undefined): Item => (value === undefined ? {} : { [name]: { S: value } });
  return {
    id: { S: request.id },
    reference: { S: request.reference },
    reason: { S: request.reason },
    filedBy: { S: request.filedBy },
    status: { S: request.status },
    attempts: { N: String(request.attempts) },
    createdAt: { S: request.createdAt },
    updatedAt: { S: request.updatedAt },
    subjects: { S: JSON.stringify(request.subjects) },
    tables: { S: JSON.stringify(request.tables) },
    revision: { N: revision },
    gsi1pk: { S: `STATUS#${request.status}` },
    gsi1sk: { S: `${request.createdAt}#${request.id}` },
    ...optional('runId', request.runId),
    ...optional('stepId', request.stepId),
    ...optional('error', request.error),
    ...optional('certificate', request.certificate === undefined ? undefined : JSON.stringify(request.certificate)),
    ...optional('extension', request.extension === undefined ? undefined : JSON.stringify(request.extension)),
  };
}

function fromItem(item: Item): ErasureRequest {
  const certificate = item.certificate?.S;
  const extension = item.extension?.S;
  return {
    id: stringOf(item, 'id'),
    reference: stringOf(item, 'reference'),
    reason: stringOf(item, 'reason') as ErasureRequest['reason'],
    filedBy: stringOf(item, 'filedBy'),
    status: stringOf(item, 'status') as ErasureStatus,
    attempts: safeNumber(numberText(item, 'attempts')),
    createdAt: stringOf(item, 'createdAt'),
    updatedAt: stringOf(item, 'updatedAt'),
    subjects: JSON.parse(stringOf(item, 'subjects')) as ErasureRequest['subjects'],
    tables: JSON.parse(stringOf(item, 'tables')) as ErasureRequest['tables'],
    runId: item.runId?.S,
    stepId: item.stepId?.S,
    error: item.error?.S,
    certificate: certificate === undefined ? undefined : (JSON.parse(certificate) as unknown),
    extension: extension === undefined ? undefined : (JSON.parse(extension) as ErasureRequest['extension']),
  };
}

/** One item per context the request names, holding all its pseudonyms there (a set: duplicates merge). */
function erasedItems(request: NewErasureRequest): Item[] {
  const byContext = new Map<string, Set<string>>();
  for (const subject of request.subjects) {
    let set = byContext.get(subject.context);
    if (!set) byContext.set(subject.context, (set = new Set()));
    for (const pseudonym of subject.pseudonyms) set.add(pseudonym);
  }
  return [...byContext]
    .filter(([, pseudonyms]) => pseudonyms.size > 0)
    .map(([context, pseudonyms]) => ({ pk: { S: `ERASED#${context}` }, sk: { S: `REQUEST#${request.id}` }, pseudonyms: { SS: [...pseudonyms] } }));
}

function byCreation(a: ErasureRequest, b: ErasureRequest): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function stringOf(item: Item, name: string): string {
  const value = item[name]?.S;
  if (value === undefined) throw new LedgerError(`an erasure ledger item lacks its ${name} attribute`);
  return value;
}

function numberText(item: Item, name: string): string {
  const value = item[name]?.N;
  if (value === undefined || !/^\d+$/.test(value)) throw new LedgerError(`an erasure ledger item lacks a whole number in ${name}`);
  return value;
}

function numberAttribute(item: Item, name: string): AttributeValue {
  return { N: numberText(item, name) };
}

/** n + 1 on decimal text, exact at any size. */
function increment(decimal: string): string {
  return (BigInt(decimal) + 1n).toString();
}

/** For the interface's number fields (attempts, seq): refuses a value a JS number would round. */
function safeNumber(decimal: string): number {
  const value = Number(decimal);
  if (!Number.isSafeInteger(value)) throw new LedgerError('an erasure ledger counter is beyond 2^53 and cannot be shown exactly');
  return value;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'unknown error';
}

function cancellationReasons(error: unknown): string[] {
  if (typeof error !== 'object' || error === null || !('CancellationReasons' in error) || !Array.isArray(error.CancellationReasons)) return [];
  return error.CancellationReasons.map((reason: unknown) => (typeof reason === 'object' && reason !== null && 'Code' in reason && typeof reason.Code === 'string' ? reason.Code : 'None'));
}

/** Throttling, a conflicting transaction, a 5xx or a dropped connection: worth another attempt. */
function isTransient(error: unknown): boolean {
  const name = errorName(error);
  if (THROTTLING.has(name) || name === 'TransactionConflictException' || name === 'InternalServerError' || name === 'ServiceUnavailable') return true;
  if (name === 'TransactionCanceledException') return cancellationReasons(error).some((code) => THROTTLING.has(code) || code === 'TransactionConflict');
  if (typeof error !== 'object' || error === null) return false;
  if (name === 'TimeoutError' || ('code' in error && typeof error.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(error.code))) return true;
  const metadata = '$metadata' in error && typeof error.$metadata === 'object' && error.$metadata !== null ? error.$metadata : undefined;
  const status = metadata && 'httpStatusCode' in metadata ? metadata.httpStatusCode : undefined;
  return typeof status === 'number' && status >= 500;
}
