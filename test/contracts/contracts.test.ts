/**
 * The TypeScript↔Python contracts on the TypeScript side: the same golden documents spark-udfs/tests/test_contracts.py
 * loads (contracts/golden/<contract>/valid-*.json pass, invalid-*.json are refused), and the local erasure runner
 * reading certificates and writing orders through them: a 64-bit snapshot id keeps every digit, a rounded one is
 * refused with the field named.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTRACT_NAMES, checkContract, ContractError, parseContract, type ContractName, type ErasureOrder } from '../../api/contracts/contracts.ts';
import { LocalErasureRunner } from '../../api/erasure/localRunner.ts';
import { parseProgress } from '../../api/erasure/runner.ts';

const GOLDEN = join(import.meta.dirname, '..', '..', 'contracts', 'golden');

function golden(kind: 'valid' | 'invalid'): [ContractName, string, unknown][] {
  return CONTRACT_NAMES.flatMap((name) =>
    readdirSync(join(GOLDEN, name))
      .filter((file) => file.startsWith(`${kind}-`) && file.endsWith('.json'))
      .sort()
      .map((file): [ContractName, string, unknown] => [name, file, JSON.parse(readFileSync(join(GOLDEN, name, file), 'utf8'))]),
  );
}

const goldenText = (name: ContractName, file: string): string => readFileSync(join(GOLDEN, name, file), 'utf8');

describe('contracts: golden documents shared with the Python side', () => {
  it('has valid and invalid documents for every contract', () => {
    for (const name of CONTRACT_NAMES) {
      expect(golden('valid').some(([n]) => n === name)).toBe(true);
      expect(golden('invalid').some(([n]) => n === name)).toBe(true);
    }
  });

  it.each(golden('valid'))('%s accepts %s', (name, _file, document) => {
    const result = checkContract(name, document);
    expect(result.ok ? 'valid' : result.error.message).toBe('valid');
  });

  it.each(golden('invalid'))('%s refuses %s', (name, _file, document) => {
    const result = checkContract(name, document);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error).toBeInstanceOf(ContractError);
      expect(result.error.code).toBe('contract-violation');
      expect(result.error.message.startsWith(`${name}: $`)).toBe(true);
    }
  });

  it('names the field at fault and never quotes the value or an unknown key', () => {
    const order = JSON.parse(goldenText('erasure-order', 'valid-jdbc.json')) as Record<string, unknown>;
    const refused = checkContract('erasure-order', { ...order, subjects: [{ context: 'email', pseudonyms: ['s1.sentinel-value', 12345] }], sentinel_key: true });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.message).not.toMatch(/sentinel|12345/);
    const noSubject = checkContract('erasure-order', { ...order, subjects: [{ context: 'email', pseudonyms: [12345] }] });
    expect(noSubject.ok ? '' : noSubject.error.message).toBe('erasure-order: $.subjects[0].pseudonyms[0]: has the wrong type');
  });

  it('keeps a 64-bit snapshot id as its exact decimal string, never a number', () => {
    const certificate = parseContract('erasure-certificate', JSON.parse(goldenText('erasure-certificate', 'valid-verified.json')));
    expect(certificate.tables[0]!.snapshotBefore).toBe('9130679734744880546');
    expect(BigInt(certificate.tables[0]!.snapshotBefore!)).toBe(9130679734744880546n);
    // What went wrong before: the number form, parsed by JavaScript, loses the last digits.
    expect(String(JSON.parse('9130679734744880546'))).toBe('9130679734744880000');
    expect(() => parseContract('erasure-certificate', JSON.parse(goldenText('erasure-certificate', 'invalid-snapshot-id-as-number.json')))).toThrow(
      'erasure-certificate: $.tables[0].snapshotBefore: has the wrong type',
    );
  });

  it('takes the example table registry, and names the field of a bad one without quoting a column or a value', () => {
    expect(checkContract('table-registry', JSON.parse(readFileSync('examples/erasure-registry.json', 'utf8'))).ok).toBe(true);
    const registry = JSON.parse(goldenText('table-registry', 'valid-glue-default-name.json')) as { tables: { columns: Record<string, string> }[] };
    registry.tables[0]!.columns = { 'sentinel-column': 'email', email: 'sentinel value' };
    const refused = checkContract('table-registry', registry);
    expect(refused.ok ? '' : refused.error.message).toBe('table-registry: $.tables[0].columns: does not have the required form');
  });

  it('shows progress that matches the contract and ignores progress that does not', () => {
    expect(parseProgress(goldenText('erasure-progress', 'valid-running.json'))).toEqual(JSON.parse(goldenText('erasure-progress', 'valid-running.json')));
    expect(parseProgress(goldenText('erasure-progress', 'invalid-unknown-status.json'))).toBeUndefined();
    expect(parseProgress('{"not": "finished')).toBeUndefined();
  });
});

describe('contracts: the local erasure runner', () => {
  const order = JSON.parse(goldenText('erasure-order', 'valid-jdbc.json')) as ErasureOrder;
  // No Python at all: a run whose certificate is already there is not started again (the re-attach path).
  const runner = (workDir: string) => new LocalErasureRunner({ python: '/nonexistent/python', sparkMaster: 'local[1]', jars: workDir, workDir });

  function withCertificate(text: string): string {
    const workDir = mkdtempSync(join(tmpdir(), 'contracts-'));
    mkdirSync(join(workDir, order.runId));
    writeFileSync(join(workDir, order.runId, 'certificate.json'), text);
    return workDir;
  }

  it('takes a certificate that matches the contract with every digit of its snapshot ids', async () => {
    const text = goldenText('erasure-certificate', 'valid-verified.json');
    const outcome = await runner(withCertificate(text)).run(order);
    expect(outcome.kind).toBe('completed');
    if (outcome.kind === 'completed') {
      expect(outcome.certificate.tables[0]!.snapshotBefore).toBe('9130679734744880546');
      expect(JSON.stringify(outcome.certificate)).toContain('"snapshotBefore":"9130679734744880546"');
      expect(outcome.certificate).toEqual(JSON.parse(text));
    }
  });

  it.each([
    ['invalid-snapshot-id-as-number.json', '$.tables[0].snapshotBefore: has the wrong type'],
    ['invalid-snapshot-id-in-exponent-form.json', '$.tables[0].snapshotAfter: does not have the required form'],
    ['invalid-bytes-scanned-as-number.json', '$.tables[0].verification.bytesScanned: has the wrong type'],
  ])('fails the run with a clear reason for %s', async (file, reason) => {
    const outcome = await runner(withCertificate(goldenText('erasure-certificate', file))).run(order);
    expect(outcome).toEqual({ kind: 'crashed', reason: `the job's certificate does not match the contract: erasure-certificate: ${reason}` });
  });

  it("fails the run when the certificate is another run's", async () => {
    const other = { ...(JSON.parse(goldenText('erasure-certificate', 'valid-verified.json')) as object), runId: 'run-other' };
    expect(await runner(withCertificate(JSON.stringify(other))).run(order)).toEqual({ kind: 'crashed', reason: "the job's certificate is of another run" });
  });

  it('refuses to write an order the job would refuse, before starting anything', async () => {
    const workDir = mkdtempSync(join(tmpdir(), 'contracts-'));
    const twoPartName = { ...order, tables: [{ name: 'local.customers', columns: { email: 'email' } }] };
    await expect(runner(workDir).run(twoPartName)).rejects.toThrow(new ContractError('erasure-order', '$.tables[0].name', 'does not have the required form'));
    expect(existsSync(join(workDir, order.runId, 'order.json'))).toBe(false);
  });
});
