/**
 * `npm run infra -- COMMAND --config infra/cluster.json`: provisions the LDAP-secured EMR cluster.
 *
 *   render                      print the security configuration JSON (placeholder secret ARNs; no AWS call)
 *   up                          secrets + security configuration + RunJobFlow; prints cluster id, endpoints, IAM statement
 *   endpoints --cluster ID      state and application endpoints of a cluster
 *   terminate --cluster ID      terminate it
 *   doctor --user NAME          check DNS, TCP, TLS with the CA, bind, the user and their groups
 *
 * The bind password comes from the variable or file the config names; --endpoint (or
 * PSEUDO_AWS_ENDPOINT) points the AWS clients at a local endpoint such as moto. --help prints the usage
 * with examples. Exit status: 0 done, 1 the command (or a doctor check) failed, 2 usage or configuration.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, errorMessage } from '../api/errors.ts';
import { bindPassword, readClusterConfig } from './config.ts';
import { doctor } from './doctor.ts';
import { EmrLdapProvisioner } from './emr/provision.ts';
import { ldapSecurityConfiguration } from './emr/securityConfiguration.ts';
import { runStackCommand, STACK_COMMANDS } from './deploy/cli.ts';
import { runSubmitCommand } from './artifacts/submit.ts';

const USAGE = `usage: npm run infra -- <command> --config FILE [options]

Provisions the LDAP-secured EMR cluster that FILE describes (start from infra/cluster.example.json).

commands:
  render                      print the security configuration JSON (placeholder secret ARNs; no AWS call)
  up                          secrets, security configuration and the cluster; prints the cluster id,
                              endpoints and the IAM statement the instance profile needs
  endpoints --cluster ID      state and application endpoints of a cluster
  terminate --cluster ID      terminate it
  doctor --user NAME          check DNS, TCP, TLS with the CA, the bind, the user and their groups
  deploy | outputs | destroy  the platform's CloudFormation stacks, no --config (npm run infra -- deploy --help)
  submit JOB                  a job of the uploaded Spark artifacts as an EMR step, followed to its end: batch,
                              stream, erasure, maintain or rekey (npm run infra -- submit --help)

options:
  --config FILE               the cluster description (required)
  --endpoint URL              a local AWS endpoint such as moto's (default PSEUDO_AWS_ENDPOINT, else AWS)
  -h, --help                  this text

The bind password comes from the environment variable or file the config names, never from the config.

exit status: 0 done, 1 the command failed (or a doctor check failed), 2 usage or configuration error

examples:
  cp infra/cluster.example.json infra/cluster.json   # then edit it
  npm run infra -- render --config infra/cluster.json
  LDAP_BIND_PASSWORD=… npm run infra -- doctor --user steve --config infra/cluster.json
  LDAP_BIND_PASSWORD=… npm run infra -- up --config infra/cluster.json
  npm run infra -- terminate --cluster j-2AXXXXXXGAPLF --config infra/cluster.json`;

const COMMANDS = new Set(['render', 'up', 'endpoints', 'terminate', 'doctor']);

class UsageError extends Error {}

async function run(argv: readonly string[]): Promise<number> {
  // The platform's CloudFormation stacks have their own options and usage (infra/deploy/cli.ts).
  if (argv[0] !== undefined && STACK_COMMANDS.has(argv[0])) return runStackCommand(argv);
  // Jobs of the uploaded Spark artifacts as EMR steps (infra/artifacts/submit.ts), no --config either.
  if (argv[0] === 'submit') return runSubmitCommand(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' }, config: { type: 'string' }, endpoint: { type: 'string' }, cluster: { type: 'string' }, user: { type: 'string' } },
    });
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    throw new UsageError(errorMessage(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (command === undefined) throw new UsageError('a command is needed: render, up, endpoints, terminate or doctor');
  if (!COMMANDS.has(command)) throw new UsageError('unknown command');
  if (rest.length > 0) throw new UsageError('unexpected arguments after the command');
  if (!values.config) throw new UsageError('--config FILE is required');
  const config = readClusterConfig(values.config);
  const endpoint = values.endpoint ?? process.env.PSEUDO_AWS_ENDPOINT;
  const provisioner = new EmrLdapProvisioner(config, endpoint);
  const print = (value: unknown): void => void process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  const caPem = (): string => {
    try {
      return readFileSync(config.ldap.caFile, 'utf8');
    } catch {
      throw new UsageError(`ldap.caFile: cannot read ${config.ldap.caFile}`);
    }
  };

  switch (command) {
    case 'render':
      print(ldapSecurityConfiguration(config, { bindCredentialsArn: '<bind credentials secret ARN>', certificateArn: '<certificate secret ARN>' }));
      return 0;
    case 'up': {
      const secrets = await provisioner.putSecrets(bindPassword(config.ldap), caPem());
      const securityConfiguration = await provisioner.putSecurityConfiguration(secrets);
      const clusterId = await provisioner.launch(securityConfiguration.name);
      const { state, endpoints } = await provisioner.endpoints(clusterId);
      print({ clusterId, state, securityConfiguration: securityConfiguration.name, secrets, endpoints, instanceProfileNeeds: provisioner.instanceProfileStatement(secrets) });
      return 0;
    }
    case 'endpoints':
      if (!values.cluster) throw new UsageError('endpoints needs --cluster ID');
      print(await provisioner.endpoints(values.cluster));
      return 0;
    case 'terminate':
      if (!values.cluster) throw new UsageError('terminate needs --cluster ID');
      await provisioner.terminate(values.cluster);
      print({ terminated: values.cluster });
      return 0;
    case 'doctor': {
      if (!values.user) throw new UsageError('doctor needs --user NAME');
      const checks = await doctor({ ldap: config.ldap, bindPassword: bindPassword(config.ldap), caPem: Buffer.from(caPem()), user: values.user });
      for (const check of checks) process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name.padEnd(6)} ${check.detail}\n`);
      return checks.every((c) => c.ok) ? 0 : 1;
    }
    default:
      throw new UsageError('unknown command');
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${errorMessage(error)}\n`);
    if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(error instanceof UsageError || error instanceof ConfigError ? 2 : 1);
  },
);
