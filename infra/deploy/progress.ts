/**
 * The live view of a stack operation's events. On a terminal: one line per resource, redrawn in place as its
 * status changes (the way `cdk deploy` shows progress). Anywhere else (CI logs, tests): one plain line per event,
 * in order, so the log reads top to bottom.
 */
import type { StackEvent } from '@aws-sdk/client-cloudformation';

export interface ProgressView {
  event(event: StackEvent): void;
  /** Leaves the view: the terminal's cursor ends below it. */
  end(): void;
}

interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean | undefined;
}

export function progressView(output: Output): ProgressView {
  return output.isTTY ? new TerminalView(output) : new PlainView(output);
}

function describe(event: StackEvent): { time: string; status: string; resource: string; reason: string } {
  return {
    time: (event.Timestamp ?? new Date()).toISOString().slice(11, 19),
    status: event.ResourceStatus ?? '?',
    resource: `${event.LogicalResourceId ?? '?'} (${event.ResourceType ?? '?'})`,
    reason: event.ResourceStatusReason ? `  ${event.ResourceStatusReason}` : '',
  };
}

class PlainView implements ProgressView {
  constructor(private readonly output: Output) {}

  event(event: StackEvent): void {
    const { time, status, resource, reason } = describe(event);
    this.output.write(`${time}  ${status.padEnd(28)} ${resource}${reason}\n`);
  }

  end(): void {
    // Plain lines leave nothing to tidy up.
  }
}

class TerminalView implements ProgressView {
  private readonly lines = new Map<string, string>();
  private drawn = 0;

  constructor(private readonly output: Output) {}

  event(event: StackEvent): void {
    const { time, status, resource, reason } = describe(event);
    const mark = status.endsWith('_FAILED') ? '✗' : status.endsWith('_COMPLETE') ? '✓' : '…';
    this.lines.set(event.LogicalResourceId ?? '?', `${mark} ${time}  ${status.padEnd(28)} ${resource}${reason}`);
    this.redraw();
  }

  end(): void {
    this.drawn = 0;
  }

  private redraw(): void {
    // Up to the first line we drew, then every line again, each cleared first.
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of this.lines.values()) text += `\x1b[2K${line}\n`;
    this.output.write(text);
    this.drawn = this.lines.size;
  }
}
