/**
 * What the API's codes mean in plain language, and the answer deadline of a request. The codes are the API's
 * (GET /v1/erasure-options); a code the console has no text for is shown as the code itself.
 */
import type { ErasureRequestView } from './api.ts';

export const LEGAL_GROUND_MEANINGS: Readonly<Record<string, string>> = {
  'gdpr-art17-1a': 'GDPR Art. 17(1)(a): the data are no longer needed for the purposes they were collected for',
  'gdpr-art17-1b': 'GDPR Art. 17(1)(b): the person withdrew the consent the processing rested on',
  'gdpr-art17-1c': 'GDPR Art. 17(1)(c): the person objected to the processing, and no overriding legitimate grounds remain',
  'gdpr-art17-1d': 'GDPR Art. 17(1)(d): the data were processed unlawfully',
  'gdpr-art17-1e': 'GDPR Art. 17(1)(e): erasure is required by a legal obligation',
  'gdpr-art17-1f': 'GDPR Art. 17(1)(f): the data were collected from a child for an online service',
  'ccpa-1798.105': 'CCPA § 1798.105: a California consumer asked for their personal information to be deleted',
};

export const LIFT_REASON_MEANINGS: Readonly<Record<string, string>> = {
  consent: 'GDPR Art. 6(1)(a): the person consented again (a returning customer)',
  contract: 'GDPR Art. 6(1)(b): a new contract with the person needs their data',
  'legal-obligation': 'GDPR Art. 6(1)(c): a legal obligation requires processing their data',
  'filed-in-error': 'The subject was named by mistake',
};

export const STATUS_MEANINGS: Readonly<Record<string, string>> = {
  received: 'Filed, waiting for the next erasure run',
  running: 'An erasure run is deleting and verifying',
  verified: 'Erased and verified: the certificate is ready',
  failed: 'The erasure did not verify after its attempts: see the reason',
};

export function meaningOf(table: Readonly<Record<string, string>>, code: string): string {
  return table[code] ?? code;
}

/**
 * GDPR Art. 12(3): answer "without undue delay and in any event within one month of receipt", extendable by two
 * further months. Calendar months from filing; a filing on the 31st is due on the last day of a shorter month.
 * The API computes the same (api/erasure/requests.ts `deadlineOf`) and sends it as `deadline`.
 */
export function deadlineOf(filedAt: Date, months = 1): Date {
  const due = new Date(filedAt.getTime());
  const day = due.getUTCDate();
  due.setUTCDate(1);
  due.setUTCMonth(due.getUTCMonth() + months);
  const lastDay = new Date(Date.UTC(due.getUTCFullYear(), due.getUTCMonth() + 1, 0)).getUTCDate();
  due.setUTCDate(Math.min(day, lastDay));
  return due;
}

/** A request's deadline: the API's (extension included), or one month from filing for an answer without one. */
export function requestDeadline(request: Pick<ErasureRequestView, 'createdAt'> & { readonly deadline?: string | undefined }): Date {
  return request.deadline ? new Date(request.deadline) : deadlineOf(new Date(request.createdAt));
}

/** Overdue: past its deadline (the extended one, once extended) and not verified yet (a failed request is not answered either). */
export function isOverdue(request: Pick<ErasureRequestView, 'createdAt' | 'status'> & { readonly deadline?: string | undefined }, now: Date): boolean {
  return request.status !== 'verified' && requestDeadline(request).getTime() < now.getTime();
}

export function formatDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function formatDateTime(text: string): string {
  return `${text.slice(0, 10)} ${text.slice(11, 19)} UTC`;
}

/** Bytes as a person reads them (1 KiB = 1024 bytes), from the certificate's decimal strings. */
export function formatBytes(decimal: string): string {
  const bytes = Number(decimal);
  if (!Number.isFinite(bytes)) return decimal;
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${size.toFixed(1)} ${units[unit]!} (${decimal} bytes)`;
}
