/**
 * Subjects from a CSV file, parsed in the browser: nothing is uploaded until the officer has seen the preview and
 * sends the filing. RFC 4180 quoting (fields in double quotes, "" for a quote, line breaks inside quotes). The
 * header names the columns: `context` and either `value` or `pseudonym` (with `keyVersion` and `confirm` for FPE
 * pseudonyms), or both value and pseudonym columns with one of the two filled per row.
 *
 * Errors name the row and the column, never the cell's content: the page shows them beside the preview.
 */
import type { SubjectReference } from './api.ts';

export const MAX_SUBJECTS = 1000;
const KNOWN_COLUMNS = ['context', 'value', 'pseudonym', 'keyVersion', 'confirm'] as const;

export interface CsvRow {
  /** 1-based line of the data row in the file (the header is row 1). */
  readonly row: number;
  readonly subject?: SubjectReference;
  readonly errors: readonly string[];
}

export interface CsvResult {
  /** Problems with the file as a whole (header, size). */
  readonly fileErrors: readonly string[];
  readonly rows: readonly CsvRow[];
}

/** Splits CSV text into records of fields. */
export function parseCsvRecords(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  while (i < source.length) {
    const char = source[i]!;
    if (quoted) {
      if (char === '"' && source[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (char === '"') quoted = false;
      else field += char;
      i++;
      continue;
    }
    if (char === '"' && field === '') quoted = true;
    else if (char === ',') {
      record.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      if (char === '\r' && source[i + 1] === '\n') i++;
    } else field += char;
    i++;
  }
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  // Blank lines carry nothing.
  return records.filter((r) => !(r.length === 1 && r[0]!.trim() === ''));
}

/** Parses and checks each row against the contexts the API offers (and which of them are FPE). */
export function parseSubjectsCsv(text: string, contexts: ReadonlyMap<string, 'deterministic' | 'hash' | 'fpe'>): CsvResult {
  const records = parseCsvRecords(text);
  const header = records[0]?.map((name) => name.trim());
  if (!header) return { fileErrors: ['the file is empty: the first line must name the columns (context, and value or pseudonym)'], rows: [] };
  const fileErrors: string[] = [];
  const unknown = header.filter((name) => !(KNOWN_COLUMNS as readonly string[]).includes(name));
  if (unknown.length > 0) fileErrors.push(`the header has ${unknown.length} column(s) the console does not know: use context, value, pseudonym, keyVersion, confirm`);
  const column = (name: (typeof KNOWN_COLUMNS)[number]): number => header.indexOf(name);
  if (column('context') < 0) fileErrors.push('the header has no context column');
  if (column('value') < 0 && column('pseudonym') < 0) fileErrors.push('the header needs a value or a pseudonym column');
  const data = records.slice(1);
  if (data.length === 0) fileErrors.push('the file has no subject rows');
  if (data.length > MAX_SUBJECTS) fileErrors.push(`the file has ${data.length} rows: at most ${MAX_SUBJECTS} subjects per request`);
  if (fileErrors.length > 0) return { fileErrors, rows: [] };
  const cell = (record: readonly string[], name: (typeof KNOWN_COLUMNS)[number]): string => (column(name) >= 0 ? (record[column(name)] ?? '').trim() : '');
  const rows = data.map((record, index): CsvRow => {
    const row = index + 2;
    const errors: string[] = [];
    if (record.length !== header.length) errors.push(`has ${record.length} fields, the header ${header.length}`);
    const context = cell(record, 'context');
    const value = cell(record, 'value');
    const pseudonym = cell(record, 'pseudonym');
    const transform = contexts.get(context);
    if (context === '') errors.push('context: empty');
    else if (!transform) errors.push('context: not one of the contexts of registered tables');
    if (value === '' && pseudonym === '') errors.push('value or pseudonym: both empty');
    if (value !== '' && pseudonym !== '') errors.push('value and pseudonym: give one of the two');
    if (errors.length > 0) return { row, errors };
    if (value !== '') return { row, errors, subject: { context, value } };
    const keyVersionText = cell(record, 'keyVersion');
    const confirm = cell(record, 'confirm');
    const keyVersion = keyVersionText === '' ? undefined : Number(keyVersionText);
    if (keyVersion !== undefined && !(Number.isInteger(keyVersion) && keyVersion > 0)) errors.push('keyVersion: a positive whole number');
    if (transform === 'fpe' && confirm === '') errors.push('confirm: an FPE pseudonym needs the identifier\'s last 4 characters');
    if (transform === 'hash') errors.push('pseudonym: a hash context cannot be named by pseudonym, give the value');
    if (errors.length > 0) return { row, errors };
    return { row, errors, subject: { context, pseudonym, ...(keyVersion !== undefined ? { keyVersion } : {}), ...(confirm !== '' ? { confirm } : {}) } };
  });
  return { fileErrors, rows };
}
