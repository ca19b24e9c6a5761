// Memory held on behalf of clients where each request is capped but their number is not: request
// bodies being read (BODY_BUDGET_BYTES) and large query answers being sent (READ_BUDGET_BYTES).
// Past a budget the request is refused, 503 overloaded with Retry-After, instead of the process
// growing until the kernel kills it and the queue with it.
import type { Config } from '../config';
import { ApiError } from '../errors';

export class MemoryBudget {
  /** Bytes held right now. */
  held = 0;
  /** Requests refused because the budget was spent, ever. */
  refused = 0;

  constructor(
    readonly max: number,
    private readonly refusal: string, // the 503's message: what is held, the setting, what to do
    private readonly retryAfter: number,
  ) {}

  /** Whether `n` more bytes fit. One item larger than the whole budget fits when nothing else is held. */
  fits(n: number) {
    return this.held + n <= this.max || this.held === 0;
  }

  /** Refuses the request (503 overloaded) unless `n` more bytes fit. */
  assertFits(n: number) {
    if (this.fits(n)) return;
    this.refused++;
    throw new ApiError('overloaded', this.refusal, { retryAfter: this.retryAfter });
  }

  take(n: number) {
    this.assertFits(n);
    this.held += n;
  }

  /** Takes `n` bytes already checked with assertFits (the check and the holding are apart in time). */
  hold(n: number) {
    this.held += n;
  }

  give(n: number) {
    this.held -= n;
  }
}

/** The service's two budgets, as configured. */
export function createBudgets({ limits: { bodyBudgetBytes, readBudgetBytes }, retryAfterSeconds }: Config) {
  return {
    bodies: new MemoryBudget(
      bodyBudgetBytes,
      `The service is reading as many request bodies as it may hold at once (BODY_BUDGET_BYTES=${bodyBudgetBytes}); retry shortly`,
      retryAfterSeconds,
    ),
    answers: new MemoryBudget(
      readBudgetBytes,
      `The service is sending as many large answers as it may hold at once (READ_BUDGET_BYTES=${readBudgetBytes}); retry shortly, or ask for a smaller pageSize`,
      retryAfterSeconds,
    ),
  };
}
