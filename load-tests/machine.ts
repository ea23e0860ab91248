/** What every benchmark table states: the machine, the runtime, the command and the date. */
import { cpus, totalmem } from 'node:os';

export function machineHeader(command: string): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return [
    `date:    ${new Date().toISOString()}`,
    `machine: ${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform}/${process.arch}`,
    `runtime: Node ${process.versions.node}, OpenSSL ${process.versions.openssl}`,
    `command: ${command}`,
  ].join('\n');
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  const line = (r: string[]) => '| ' + r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ') + ' |';
  const separator = '|' + widths.map((w, c) => (c === 0 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(cells[0]!), separator, ...cells.slice(1).map(line)].join('\n');
}

/** Random VIN-like 17-character identifiers (no I, O, Q), distinct. */
export function vins(count: number, seed = 1): string[] {
  const alphabet = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
  let state = seed;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const out = new Set<string>();
  while (out.size < count) {
    let s = '';
    for (let i = 0; i < 17; i++) s += alphabet.charAt(next() % alphabet.length);
    out.add(s);
  }
  return [...out];
}
