/**
 * The local erasure runner and its jars folder: the Python job names no folder of a checkout, so the runner
 * hands the configured one (PSEUDO_ERASURE_SPARK_JARS) to the job as SPARK_UDFS_JARS, and refuses a folder that
 * is not there when it is built. The job itself (real Spark) runs in spark-udfs/tests/test_erasure_service.py;
 * here the "interpreter" is a shell script that records what the runner gave it.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalErasureRunner } from '../../api/erasure/localRunner.ts';
import type { ErasureOrder } from '../../api/erasure/runner.ts';
import { ConfigError } from '../../api/errors.ts';

const GOLDEN_ORDER = join(import.meta.dirname, '..', '..', 'contracts', 'golden', 'erasure-order', 'valid-jdbc.json');

describe('local erasure runner: the jars folder', () => {
  const folders: string[] = [];
  const folder = (): string => {
    const made = mkdtempSync(join(tmpdir(), 'local-runner-'));
    folders.push(made);
    return made;
  };
  afterEach(() => {
    for (const made of folders.splice(0)) rmSync(made, { recursive: true, force: true });
  });

  it('refuses a jars folder that does not exist, naming the setting', () => {
    const work = folder();
    const build = () => new LocalErasureRunner({ python: '/nonexistent/python', sparkMaster: 'local[1]', jars: join(work, 'no-such-folder'), workDir: work });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(/^PSEUDO_ERASURE_SPARK_JARS: /);
  });

  it('passes the configured folder to the job as SPARK_UDFS_JARS', async () => {
    const work = folder();
    const jars = folder();
    // Stands in for the interpreter: prints the variable into job.log and exits without a certificate.
    const python = join(work, 'python');
    writeFileSync(python, '#!/bin/sh\necho "SPARK_UDFS_JARS=$SPARK_UDFS_JARS"\nexit 3\n');
    chmodSync(python, 0o700);
    const order = JSON.parse(readFileSync(GOLDEN_ORDER, 'utf8')) as ErasureOrder;
    const runner = new LocalErasureRunner({ python, sparkMaster: 'local[1]', jars, workDir: join(work, 'runs') });
    const outcome = await runner.run(order);
    expect(outcome.kind).toBe('crashed');
    expect(readFileSync(join(work, 'runs', order.runId, 'job.log'), 'utf8')).toContain(`SPARK_UDFS_JARS=${jars}\n`);
  });
});
