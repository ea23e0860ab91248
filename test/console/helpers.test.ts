/** The console's pure parts: CSV subjects (quoting, per-row errors that never quote a cell), deadlines and overdue. */
import { describe, expect, it } from 'vitest';
import { parseCsvRecords, parseSubjectsCsv } from '../../console/src/csv.ts';
import { deadlineOf as apiDeadlineOf } from '../../api/erasure/requests.ts';
import { deadlineOf, isOverdue } from '../../console/src/meaning.ts';

const CONTEXTS = new Map([['email', 'deterministic'], ['vin', 'fpe'], ['national_id', 'hash']] as const);

describe('CSV subjects', () => {
  it('reads RFC 4180 quoting, CRLF, a byte order mark and blank lines', () => {
    expect(parseCsvRecords('\uFEFFa,b\r\n"x, ""y""",z\n\n"multi\nline",w')).toEqual([['a', 'b'], ['x, "y"', 'z'], ['multi\nline', 'w']]);
  });

  it('turns rows into subjects and marks bad rows by row and column, never by their content', () => {
    const secret = 'sentinel.person@example.com';
    const result = parseSubjectsCsv(`context,value,pseudonym,confirm\nemail,${secret},,\nnope,${secret},,\nvin,,p1.x,\nvin,,p1.y,1234\nnational_id,,h.z,\nemail,${secret},p.q,\nemail,,,`, CONTEXTS);
    expect(result.fileErrors).toEqual([]);
    expect(result.rows.map((r) => [r.row, r.errors])).toEqual([
      [2, []],
      [3, ['context: not one of the contexts of registered tables']],
      [4, ["confirm: an FPE pseudonym needs the identifier's last 4 characters"]],
      [5, []],
      [6, ['pseudonym: a hash context cannot be named by pseudonym, give the value']],
      [7, ['value and pseudonym: give one of the two']],
      [8, ['value or pseudonym: both empty']],
    ]);
    expect(result.rows[0]!.subject).toEqual({ context: 'email', value: secret });
    expect(result.rows[3]!.subject).toEqual({ context: 'vin', pseudonym: 'p1.y', confirm: '1234' });
    for (const row of result.rows) for (const error of row.errors) expect(error).not.toContain('sentinel');
  });

  it('refuses a file without the columns it needs, or with too many rows', () => {
    expect(parseSubjectsCsv('', CONTEXTS).fileErrors[0]).toContain('empty');
    expect(parseSubjectsCsv('email,jane@example.com\n', CONTEXTS).fileErrors).toEqual(expect.arrayContaining(['the header has no context column']));
    expect(parseSubjectsCsv(`context,value\n${'email,x\n'.repeat(1001)}`, CONTEXTS).fileErrors).toEqual(['the file has 1001 rows: at most 1000 subjects per request']);
  });
});

describe('deadlines (GDPR Art. 12(3): one month from receipt)', () => {
  it('is one calendar month later, the last day of a shorter month', () => {
    expect(deadlineOf(new Date('2026-11-26T04:00:00Z')).toISOString()).toBe('2026-12-26T04:00:00.000Z');
    expect(deadlineOf(new Date('2026-01-31T10:00:00Z')).toISOString()).toBe('2026-02-28T10:00:00.000Z');
    expect(deadlineOf(new Date('2026-12-15T00:00:00Z')).toISOString()).toBe('2027-01-15T00:00:00.000Z');
  });

  it('marks open and failed requests past it as overdue, never verified ones', () => {
    const now = new Date('2026-03-05T00:00:00Z');
    expect(isOverdue({ createdAt: '2026-02-01T00:00:00Z', status: 'received' }, now)).toBe(true);
    expect(isOverdue({ createdAt: '2026-02-01T00:00:00Z', status: 'failed' }, now)).toBe(true);
    expect(isOverdue({ createdAt: '2026-02-01T00:00:00Z', status: 'verified' }, now)).toBe(false);
    expect(isOverdue({ createdAt: '2026-02-10T00:00:00Z', status: 'running' }, now)).toBe(false);
  });

  it("counts from the API's deadline once extended, and agrees with the API on it", () => {
    const now = new Date('2026-03-05T00:00:00Z');
    const extended = { createdAt: '2026-02-01T00:00:00Z', status: 'received' as const, deadline: apiDeadlineOf('2026-02-01T00:00:00Z', { months: 2 }) };
    expect(extended.deadline).toBe('2026-05-01T00:00:00.000Z');
    expect(isOverdue(extended, now)).toBe(false);
    expect(isOverdue(extended, new Date('2026-05-02T00:00:00Z'))).toBe(true);
    for (const filed of ['2026-01-31T10:00:00Z', '2028-02-29T23:59:59Z', '2026-12-31T00:00:00Z']) {
      for (const months of [1, 2] as const) expect(deadlineOf(new Date(filed), 1 + months).toISOString()).toBe(apiDeadlineOf(filed, { months }));
      expect(deadlineOf(new Date(filed)).toISOString()).toBe(apiDeadlineOf(filed));
    }
  });
});
