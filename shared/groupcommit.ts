/**
 * Group commit: the first commit attempts of concurrent admissions on one instance share Firestore
 * commits. While `maxInFlight` commits are on the wire, new claim sets queue; when one returns, the queue
 * goes out as one atomic commit. An idle instance commits at once, so a lone request waits for nothing;
 * under load a request waits at most for the commit ahead of it, and one commit of 16 claims costs Firestore
 * and this process far less than 16 commits of one.
 *
 * Each member keeps its own guarantees. A shared commit is atomic: every member's writes land or none does.
 * When it fails (one member's precondition, or a transient error) every member commits again alone and gets
 * the outcome of its own writes, so one request's conflict never becomes another's denial. A commit that
 * hangs stops holding the queue after `stallMs`, and a member whose request has given up is dropped before
 * its writes go out, so no claim is written for a request that was already answered.
 */
import type { Write } from './allocator.js';
import { DeadlineError } from './deadline.js';

/** How a member's writes went. `commits` counts the transaction attempts its writes took part in (0 to 2). */
export type MemberResult =
  | { readonly ok: true; readonly commits: number; readonly group: number }
  | { readonly ok: false; readonly commits: number; readonly error: unknown };

export interface GroupCommitOptions {
  /** Commits on the wire at once before new members queue. */
  readonly maxInFlight?: number;
  /** Writes in one commit at most (Firestore's classic limit per commit is 500). */
  readonly maxWrites?: number;
  /** A commit still on the wire after this long no longer holds back the queue. */
  readonly stallMs?: number;
}

export const GROUP_MAX_IN_FLIGHT = 2;
export const GROUP_MAX_WRITES = 500;
export const GROUP_STALL_MS = 1_000;

interface Member {
  readonly writes: readonly Write[];
  /** Aborted once the request has been answered without these writes. */
  readonly given: AbortSignal | undefined;
  readonly resolve: (result: MemberResult) => void;
}

export class GroupCommit {
  private readonly maxInFlight: number;
  private readonly maxWrites: number;
  private readonly stallMs: number;
  private queue: Member[] = [];
  private queuedPaths = new Set<string>();
  private queuedWrites = 0;
  private inFlight = 0;

  /** `commit` applies writes atomically and rejects when any precondition fails. */
  constructor(
    private readonly commit: (writes: readonly Write[]) => Promise<void>,
    options: GroupCommitOptions = {},
  ) {
    this.maxInFlight = options.maxInFlight ?? GROUP_MAX_IN_FLIGHT;
    this.maxWrites = options.maxWrites ?? GROUP_MAX_WRITES;
    this.stallMs = options.stallMs ?? GROUP_STALL_MS;
    for (const [name, value] of Object.entries({ maxInFlight: this.maxInFlight, maxWrites: this.maxWrites })) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`group commit ${name} must be an integer >= 1`);
    }
  }

  /** Commits `writes`, alone or with others, unless `given` is aborted before they go out; never rejects. */
  submit(writes: readonly Write[], given?: AbortSignal): Promise<MemberResult> {
    return new Promise((resolve) => {
      const paths = writes.map((w) => w.path);
      // Two writes to one document cannot share a commit, and a commit has a size limit: send what is
      // queued now and start a new queue with this member.
      if (paths.some((p) => this.queuedPaths.has(p)) || this.queuedWrites + writes.length > this.maxWrites) {
        this.dispatch(this.takeQueue());
      }
      this.queue.push({ writes, given, resolve });
      for (const p of paths) this.queuedPaths.add(p);
      this.queuedWrites += writes.length;
      this.pump();
    });
  }

  /** Commits `writes` on their own, at once (a retry after a conflict); never rejects. */
  async alone(writes: readonly Write[], commits = 1): Promise<MemberResult> {
    const result = await settle(() => this.commit(writes));
    return result.ok ? { ok: true, commits, group: 1 } : { ok: false, commits, error: result.error };
  }

  private pump(): void {
    if (this.queue.length > 0 && this.inFlight < this.maxInFlight) this.dispatch(this.takeQueue());
  }

  private takeQueue(): Member[] {
    const members = this.queue;
    this.queue = [];
    this.queuedPaths = new Set();
    this.queuedWrites = 0;
    return members;
  }

  private dispatch(queued: Member[]): void {
    const members: Member[] = [];
    for (const m of queued) {
      if (m.given?.aborted) m.resolve({ ok: false, commits: 0, error: gaveUp() });
      else members.push(m);
    }
    if (members.length === 0) return;
    this.inFlight++;
    let holding = true;
    const release = () => {
      if (!holding) return;
      holding = false;
      this.inFlight--;
      this.pump();
    };
    const stalled = setTimeout(release, this.stallMs);
    stalled.unref();
    void this.run(members).finally(() => {
      clearTimeout(stalled);
      release();
    });
  }

  private async run(members: Member[]): Promise<void> {
    const writes = members.length === 1 ? members[0]!.writes : members.flatMap((m) => m.writes);
    const shared = await settle(() => this.commit(writes));
    if (shared.ok) {
      for (const m of members) m.resolve({ ok: true, commits: 1, group: members.length });
      return;
    }
    if (members.length === 1) {
      members[0]!.resolve({ ok: false, commits: 1, error: shared.error });
      return;
    }
    // A failed commit wrote nothing (after a lost reply it may have written everything; then each member's
    // own commit fails on its own claims and the caller re-plans from reads). Each member tries once alone.
    await Promise.all(
      members.map(async (m) => {
        if (m.given?.aborted) {
          m.resolve({ ok: false, commits: 1, error: shared.error });
          return;
        }
        m.resolve(await this.alone(m.writes, 2));
      }),
    );
  }
}

const gaveUp = () => new DeadlineError('request was answered before its commit was sent');

async function settle(commit: () => Promise<void>): Promise<{ ok: true } | { ok: false; error: unknown }> {
  try {
    await commit();
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  }
}
