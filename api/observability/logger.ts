/**
 * The one logger (pino, JSON lines). Call sites log what happened (route, status, counts, ids of
 * API keys), never values, pseudonyms, keys or secrets; the redaction list is a second net.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pseudonymization-api' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['headers', 'body', 'values', 'pseudonyms', 'identifiers', 'confirm', 'apiKey', 'password', '*.headers', '*.body'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
