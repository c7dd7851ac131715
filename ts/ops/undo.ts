/**
 * The two ways an operation ends when a step fails. Before its point of no
 * return it undoes what it did, in reverse order (Undo); after it, it carries
 * every remaining step out and reports all that failed (Forward). Either way
 * nothing is swallowed: each failure is logged with its cause and attached to
 * the error the caller gets.
 */
import { type CnmError, toCnmError } from '../errors.js';
import { log } from '../log.js';

type Step = () => Promise<unknown> | unknown;

/** Undo steps, run newest first when the operation fails. */
export class Undo {
  private readonly steps: Array<[string, Step]> = [];

  push(what: string, fn: Step): void {
    this.steps.push([what, fn]);
  }

  /** Run every undo step; returns `e` as a CnmError with the undo failures attached. */
  async run(e: unknown, context: string): Promise<CnmError> {
    const err = toCnmError(e, context);
    const failed: Error[] = [];
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const [what, fn] = this.steps[i]!;
      try {
        await fn();
      } catch (u) {
        log.warn(`undo of ${context} failed: ${what}`, { err: u });
        failed.push(u instanceof Error ? u : new Error(String(u)));
      }
    }
    this.steps.length = 0;
    if (failed.length) err.details.undoErrors = [...(err.details.undoErrors ?? []), ...failed];
    return err;
  }
}

/** Steps after the point of no return: each runs, failures are kept for the end. */
export class Forward {
  private readonly errors: unknown[] = [];

  constructor(private readonly context: string) {}

  /** run one step; its failure is logged and kept, and the next step still runs */
  async step(what: string, fn: Step): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      this.fail(what, e);
      return false;
    }
  }

  /** keep a failure that happened outside step() */
  fail(what: string, e: unknown): void {
    log.warn(`${this.context}: ${what} failed`, { err: e });
    this.errors.push(e);
  }

  /** throw the first failure, the others attached; nothing when all went well */
  finish(): void {
    if (this.errors.length === 0) return;
    const first = toCnmError(this.errors[0], this.context);
    const rest = this.errors.slice(1).map((e) => (e instanceof Error ? e : new Error(String(e))));
    if (rest.length) first.details.undoErrors = [...(first.details.undoErrors ?? []), ...rest];
    throw first;
  }
}
