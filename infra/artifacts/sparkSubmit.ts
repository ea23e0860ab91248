/**
 * The one place that builds `spark-submit` argument lists for EMR steps (command-runner.jar): the erasure
 * service's EMR runner (api/erasure/emrRunner.ts) and `npm run infra -- submit` both use it, and
 * `npm run package` records its output per job in the manifest, so what the README, the manifest, the
 * runner and the submit command say is one list.
 *
 * The entry script is a file spark-submit runs as `__main__` (spark-udfs/entry/*.py, stream-consumer/entry/*.py);
 * the package comes from --py-files (zips: Spark puts .zip/.egg/.jar files of --py-files on the executors'
 * sys.path, not .whl files).
 */

export interface SparkSubmit {
  /** The entry script's location (s3://… on EMR, a path locally). */
  readonly entryScript: string;
  /** Zips (or eggs) that hold the packages the entry script imports; none when the cluster has them installed. */
  readonly pyFiles?: readonly string[];
  /** The job's own arguments, after the entry script. */
  readonly jobArgs: readonly string[];
  /** `cluster` on EMR steps: the driver runs on YARN, not on the primary node's step runner. */
  readonly deployMode?: 'cluster' | 'client';
  /** `--conf KEY=VALUE` settings, in this order. */
  readonly conf?: Readonly<Record<string, string>>;
}

/** Iceberg's SQL extensions; the jars themselves come from EMR's `iceberg-defaults` classification. */
export const ICEBERG_CONF: Readonly<Record<string, string>> = {
  'spark.sql.extensions': 'org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions',
};

/** `spark-submit [--deploy-mode M] [--conf K=V]… [--py-files a,b] <entry> <job args>…` */
export function sparkSubmitArgs(submit: SparkSubmit): string[] {
  const conf = Object.entries(submit.conf ?? {}).flatMap(([key, value]) => ['--conf', `${key}=${value}`]);
  const pyFiles = submit.pyFiles && submit.pyFiles.length > 0 ? ['--py-files', submit.pyFiles.join(',')] : [];
  return ['spark-submit', '--deploy-mode', submit.deployMode ?? 'cluster', ...conf, ...pyFiles, submit.entryScript, ...submit.jobArgs];
}
