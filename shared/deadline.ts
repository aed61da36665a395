/** Thrown when work did not finish in time; callers turn it into `unavailable`. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

/**
 * Runs `work` but gives up after `ms`: the promise rejects with a DeadlineError while the work, which cannot be
 * cancelled, finishes (or fails) on its own. Used so every request answers in time even when Firestore hangs.
 * `work` gets a signal that is aborted just before the rejection, so it can avoid starting anything (such as a
 * write) for a caller that has already been answered.
 */
export function withDeadline<T>(work: (given: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  const given = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      given.abort();
      reject(new DeadlineError(`${what} did not answer within ${ms / 1000} s`));
    }, ms);
  });
  return Promise.race([work(given.signal), deadline]).finally(() => clearTimeout(timer));
}
