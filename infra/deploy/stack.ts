/**
 * CloudFormation stack operations for `npm run infra -- deploy|outputs|destroy`, through change sets so that
 * what will change is printed before it changes:
 *
 *   deploy   create a change set (CREATE for a new stack, UPDATE otherwise), wait for it, print its changes,
 *            execute it and follow the stack's events until the stack settles; a change set without changes
 *            is deleted and reported as "no changes". A failure names the resource that failed first and
 *            CloudFormation's reason (the later "cancelled" events are consequences, not causes).
 *   destroy  delete the stack and follow its events; a resource that cannot be deleted (a non-empty bucket,
 *            a table with deletion protection) is named with its reason.
 *   outputs  the stack's outputs.
 *
 * Every wait (the change set, the stack's events) has one deadline per operation (`--timeout`, 60 minutes by
 * default): past it the command fails naming the stack, its status and the last event, instead of polling a
 * stuck stack without end. CloudFormation itself carries on; the message says so.
 *
 * Messages carry stack, resource and type names and CloudFormation's reasons; parameters' values are never
 * printed (they hold ARNs at most, but the rule is simpler kept whole).
 */
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  type Change,
  type DescribeChangeSetCommandOutput,
  type Parameter,
  type Stack,
  type StackEvent,
} from '@aws-sdk/client-cloudformation';
import { progressView } from './progress.ts';

/** A stack operation that did not succeed; the message names the stack, and the resource when one failed. */
export class StackOperationError extends Error {
  override readonly name = 'StackOperationError';
}

/** How long one stack operation (change set, then the stack's events) may take by default. */
export const DEFAULT_TIMEOUT_MINUTES = 60;

export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean | undefined;
}

export interface StackDeployment {
  readonly stackName: string;
  readonly templateBody: string;
  readonly parameters: Readonly<Record<string, string>>;
}

export interface DeployResult {
  readonly changed: boolean;
  readonly status: string;
  readonly outputs: Readonly<Record<string, string>>;
}

const SUCCEEDED = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'DELETE_COMPLETE', 'IMPORT_COMPLETE']);
/** CloudFormation's words for "this change set changes nothing" (real CloudFormation fails such a change set). */
const NO_CHANGES = /didn't contain changes|No updates are to be performed/i;

export class StackOperations {
  constructor(
    private readonly cloudFormation: CloudFormationClient,
    private readonly output: Output,
    private readonly pollMilliseconds = 5000,
    private readonly timeoutMilliseconds = DEFAULT_TIMEOUT_MINUTES * 60_000,
  ) {}

  /** The stack, or undefined when there is none by that name (or it was deleted). */
  async describe(stackName: string): Promise<Stack | undefined> {
    try {
      const { Stacks } = await this.cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
      const stack = Stacks?.[0];
      return stack && stack.StackStatus !== 'DELETE_COMPLETE' ? stack : undefined;
    } catch (error) {
      if (error instanceof Error && error.name === 'ValidationError' && error.message.includes('does not exist')) return undefined;
      throw error;
    }
  }

  async outputs(stackName: string): Promise<Record<string, string>> {
    const stack = await this.describe(stackName);
    if (!stack) throw new StackOperationError(`there is no stack ${stackName}`);
    return outputsOf(stack);
  }

  async deploy(deployment: StackDeployment): Promise<DeployResult> {
    const { stackName } = deployment;
    const deadline = Date.now() + this.timeoutMilliseconds;
    const existing = await this.describe(stackName);
    const status = existing?.StackStatus;
    if (status === 'ROLLBACK_COMPLETE') {
      throw new StackOperationError(`stack ${stackName} is ROLLBACK_COMPLETE (its creation failed and was rolled back): destroy it, then deploy again`);
    }
    if (status === 'UPDATE_ROLLBACK_FAILED') {
      throw new StackOperationError(`stack ${stackName} is UPDATE_ROLLBACK_FAILED (an update failed and so did its rollback): fix what the failed resource's reason names, run aws cloudformation continue-update-rollback --stack-name ${stackName}, then deploy again`);
    }
    if (status && status !== 'REVIEW_IN_PROGRESS' && status.endsWith('_IN_PROGRESS')) {
      throw new StackOperationError(`stack ${stackName} is ${status}: wait for that operation to end`);
    }
    const changeSetType = existing && status !== 'REVIEW_IN_PROGRESS' ? 'UPDATE' : 'CREATE';
    const changeSetName = `deploy-${Date.now()}`;
    let changeSetId: string;
    try {
      const created = await this.cloudFormation.send(
        new CreateChangeSetCommand({
          StackName: stackName,
          ChangeSetName: changeSetName,
          ChangeSetType: changeSetType,
          TemplateBody: deployment.templateBody,
          Parameters: parametersFor(deployment.parameters, changeSetType === 'UPDATE' ? existing : undefined),
          Capabilities: ['CAPABILITY_IAM'],
        }),
      );
      changeSetId = created.Id ?? changeSetName;
    } catch (error) {
      // Some endpoints (moto) refuse an empty change set outright instead of failing it.
      if (existing && error instanceof Error && error.name === 'ValidationError' && NO_CHANGES.test(error.message)) return this.unchanged(existing);
      throw error;
    }
    const changeSet = await this.waitForChangeSet(stackName, changeSetId, deadline);
    const changes = changeSet.Changes ?? [];
    const noChanges = (changeSet.Status === 'FAILED' && NO_CHANGES.test(changeSet.StatusReason ?? '')) || (changeSet.Status === 'CREATE_COMPLETE' && changeSetType === 'UPDATE' && changes.length === 0);
    if (noChanges) {
      await this.cloudFormation.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId }));
      if (existing) return this.unchanged(existing);
    }
    if (changeSet.Status !== 'CREATE_COMPLETE') {
      // A failed change set stays listed on the stack until deleted; the next deploy creates a new one anyway.
      await this.cloudFormation.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId })).catch(() => undefined);
      throw new StackOperationError(`the change set for ${stackName} could not be created: ${changeSet.StatusReason ?? changeSet.Status ?? 'no reason given'}`);
    }
    this.output.write(`${stackName}: ${changeSetType === 'CREATE' ? 'creating' : 'updating'}, ${changes.length} change${changes.length === 1 ? '' : 's'}\n`);
    for (const change of changes) this.output.write(`  ${describeChange(change)}\n`);

    const seen = await this.eventIds(stackName);
    await this.cloudFormation.send(new ExecuteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId }));
    const settled = await this.follow(existing?.StackId ?? changeSet.StackId ?? stackName, seen, `deploy of ${stackName}`, deadline);
    if (!SUCCEEDED.has(settled.status)) throw new StackOperationError(failureMessage(`deploy of ${stackName}`, settled));
    const stack = await this.describe(stackName);
    return { changed: true, status: settled.status, outputs: stack ? outputsOf(stack) : {} };
  }

  private unchanged(stack: Stack): DeployResult {
    this.output.write(`${stack.StackName ?? 'the stack'}: no changes\n`);
    return { changed: false, status: stack.StackStatus ?? 'UNKNOWN', outputs: outputsOf(stack) };
  }

  /** Deletes the stack; true when there was one. */
  async destroy(stackName: string): Promise<boolean> {
    const existing = await this.describe(stackName);
    if (!existing) return false;
    const stackId = existing.StackId ?? stackName;
    const deadline = Date.now() + this.timeoutMilliseconds;
    const seen = await this.eventIds(stackId);
    await this.cloudFormation.send(new DeleteStackCommand({ StackName: stackId }));
    const settled = await this.follow(stackId, seen, `destroy of ${stackName}`, deadline);
    if (settled.status !== 'DELETE_COMPLETE') throw new StackOperationError(failureMessage(`destroy of ${stackName}`, settled));
    return true;
  }

  private async waitForChangeSet(stackName: string, changeSetId: string, deadline: number): Promise<DescribeChangeSetCommandOutput> {
    for (;;) {
      const changeSet = await this.cloudFormation.send(new DescribeChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetId }));
      if (changeSet.Status !== 'CREATE_PENDING' && changeSet.Status !== 'CREATE_IN_PROGRESS') return changeSet;
      if (Date.now() >= deadline) {
        throw new StackOperationError(`deploy of ${stackName} timed out after ${this.timeoutText()}: its change set is still ${changeSet.Status}; delete it (aws cloudformation delete-change-set --stack-name ${stackName} --change-set-name ${changeSetId}) and deploy again`);
      }
      await sleep(this.pollMilliseconds);
    }
  }

  /**
   * Follows a stack until it settles, as deploy and destroy do after starting an operation: for an operation
   * started elsewhere (the console, an earlier deploy that timed out). Fails past the timeout like they do.
   */
  async waitUntilSettled(stackName: string, operation: string): Promise<{ status: string; events: StackEvent[] }> {
    return this.follow(stackName, await this.eventIds(stackName), operation, Date.now() + this.timeoutMilliseconds);
  }

  private timeoutText(): string {
    const minutes = this.timeoutMilliseconds / 60_000;
    return Number.isInteger(minutes) ? `${minutes} min` : `${this.timeoutMilliseconds / 1000} s`;
  }

  private async eventIds(stackName: string): Promise<Set<string>> {
    const existing = await this.describe(stackName);
    if (!existing) return new Set();
    return new Set((await this.recentEvents(stackName)).map((event) => event.EventId ?? ''));
  }

  /** The newest page of events (newest first). */
  private async recentEvents(stackName: string): Promise<StackEvent[]> {
    const { StackEvents } = await this.cloudFormation.send(new DescribeStackEventsCommand({ StackName: stackName }));
    return StackEvents ?? [];
  }

  /**
   * Prints the operation's events as they come until the stack's status stops being *_IN_PROGRESS; past the
   * deadline, fails naming the stack, its status and the last event seen.
   */
  private async follow(stackId: string, seen: Set<string>, operation: string, deadline: number): Promise<{ status: string; events: StackEvent[] }> {
    const view = progressView(this.output);
    const events: StackEvent[] = [];
    try {
      for (;;) {
        const fresh = (await this.recentEvents(stackId)).filter((event) => !seen.has(event.EventId ?? '')).reverse();
        for (const event of fresh) {
          seen.add(event.EventId ?? '');
          events.push(event);
          view.event(event);
        }
        const { Stacks } = await this.cloudFormation.send(new DescribeStacksCommand({ StackName: stackId }));
        const status = Stacks?.[0]?.StackStatus ?? 'DELETE_COMPLETE';
        if (!status.endsWith('_IN_PROGRESS')) return { status, events };
        if (Date.now() >= deadline) throw new StackOperationError(timeoutMessage(operation, Stacks?.[0]?.StackName ?? stackId, status, events.at(-1), this.timeoutText()));
        await sleep(this.pollMilliseconds);
      }
    } finally {
      view.end();
    }
  }
}

/** The given values; on an update, every other parameter the stack has keeps its value. */
function parametersFor(given: Readonly<Record<string, string>>, existing: Stack | undefined): Parameter[] {
  const parameters: Parameter[] = Object.entries(given).map(([ParameterKey, ParameterValue]) => ({ ParameterKey, ParameterValue }));
  for (const previous of existing?.Parameters ?? []) {
    if (previous.ParameterKey && !(previous.ParameterKey in given)) parameters.push({ ParameterKey: previous.ParameterKey, UsePreviousValue: true });
  }
  return parameters;
}

function describeChange(change: Change): string {
  const resource = change.ResourceChange;
  const action = resource?.Action ?? '?';
  const sign = action === 'Add' ? '+' : action === 'Remove' ? '-' : '~';
  const replacement = resource?.Replacement === 'True' ? '  (replaced)' : resource?.Replacement === 'Conditional' ? '  (may be replaced)' : '';
  return `${sign} ${action.padEnd(7)} ${resource?.LogicalResourceId ?? '?'} (${resource?.ResourceType ?? '?'})${replacement}`;
}

/**
 * The first resource that failed, with its reason. Events that follow a failure ("Resource creation cancelled",
 * "Resource update cancelled") only say that CloudFormation stopped the others.
 */
export function failureMessage(operation: string, settled: { status: string; events: readonly StackEvent[] }): string {
  const failures = settled.events.filter((event) => event.ResourceStatus?.endsWith('_FAILED') && event.ResourceType !== 'AWS::CloudFormation::Stack');
  const cause = failures.find((event) => !/cancelled/i.test(event.ResourceStatusReason ?? '')) ?? failures[0];
  const stackEvent = settled.events.find((event) => event.ResourceType === 'AWS::CloudFormation::Stack' && event.ResourceStatus?.endsWith('_FAILED'));
  const detail = cause
    ? `${cause.LogicalResourceId ?? '?'} (${cause.ResourceType ?? '?'}) ${cause.ResourceStatus ?? ''}: ${cause.ResourceStatusReason ?? 'no reason given'}`
    : (stackEvent?.ResourceStatusReason ?? 'no resource reported a failure');
  return `${operation} failed: ${detail}; the stack is ${settled.status}`;
}

/** What a timed-out wait says: the stack goes on without us, so say where it stands and how to carry on. */
export function timeoutMessage(operation: string, stackName: string, status: string, lastEvent: StackEvent | undefined, after: string): string {
  const last = lastEvent ? `; last event: ${lastEvent.LogicalResourceId ?? '?'} (${lastEvent.ResourceType ?? '?'}) ${lastEvent.ResourceStatus ?? ''}${lastEvent.ResourceStatusReason ? `: ${lastEvent.ResourceStatusReason}` : ''}` : '; no event since it started';
  return `${operation} timed out after ${after}: stack ${stackName} is still ${status}${last}. CloudFormation carries on without this command: follow it (aws cloudformation describe-stack-events --stack-name ${stackName}) and deploy again once it has settled`;
}

function outputsOf(stack: Stack): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const output of stack.Outputs ?? []) if (output.OutputKey && output.OutputValue !== undefined) outputs[output.OutputKey] = output.OutputValue;
  return outputs;
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
