import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { Write } from '../../shared/allocator.js';
import { DeadlineError } from '../../shared/deadline.js';
import { GroupCommit, type MemberResult } from '../../shared/groupcommit.js';

/**
 * The grouping logic against a commit function the test controls: each call waits until the test settles
 * it, and fails when its writes touch a path listed in `failing` (as a precondition would).
 */
class Wire {
  readonly calls: { writes: readonly Write[]; settle: () => void }[] = [];
  readonly failing = new Set<string>();
  readonly commit = (writes: readonly Write[]): Promise<void> =>
    new Promise((resolve, reject) => {
      this.calls.push({
        writes,
        settle: () =>
          writes.some((w) => this.failing.has(w.path))
            ? reject(Object.assign(new Error('exists'), { code: 6 }))
            : resolve(),
      });
    });
  /** Settles call `i` and lets the promise chains that follow run. */
  async settle(i: number): Promise<void> {
    this.calls[i]!.settle();
    await flush();
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));
const create = (path: string): Write => ({ kind: 'create', path, data: {} });
const paths = (writes: readonly Write[]) => writes.map((w) => w.path);

describe('GroupCommit', () => {
  it('commits a lone request at once, alone', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit);
    const result = group.submit([create('macs/a'), create('macs/b')]);
    expect(wire.calls.map((c) => paths(c.writes))).toEqual([['macs/a', 'macs/b']]);
    await wire.settle(0);
    expect(await result).toEqual({ ok: true, commits: 1, group: 1 });
  });

  it('queues while the wire is busy and sends the queue as one commit when a commit returns', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 2 });
    const first = [group.submit([create('macs/1')]), group.submit([create('macs/2')])];
    const queued = ['3', '4', '5'].map((m) => group.submit([create(`macs/${m}`)]));
    expect(wire.calls).toHaveLength(2);
    await wire.settle(1);
    expect(wire.calls).toHaveLength(3);
    expect(paths(wire.calls[2]!.writes)).toEqual(['macs/3', 'macs/4', 'macs/5']);
    await wire.settle(0);
    await wire.settle(2);
    expect(await Promise.all(first)).toEqual([
      { ok: true, commits: 1, group: 1 },
      { ok: true, commits: 1, group: 1 },
    ]);
    expect(await Promise.all(queued)).toEqual(Array(3).fill({ ok: true, commits: 1, group: 3 }));
  });

  it('retries each member alone after a shared commit fails, so only the conflicting one fails', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 1 });
    const busy = group.submit([create('macs/busy')]);
    const members = ['x', 'taken', 'y'].map((m) => group.submit([create(`macs/${m}`)]));
    wire.failing.add('macs/taken');
    await wire.settle(0);
    await wire.settle(1); // the shared commit of x, taken, y fails
    expect(wire.calls.slice(2).map((c) => paths(c.writes))).toEqual([['macs/x'], ['macs/taken'], ['macs/y']]);
    for (const i of [2, 3, 4]) await wire.settle(i);
    const [x, taken, y] = await Promise.all(members);
    expect(x).toEqual({ ok: true, commits: 2, group: 1 });
    expect(y).toEqual({ ok: true, commits: 2, group: 1 });
    expect(taken).toMatchObject({ ok: false, commits: 2, error: { code: 6 } });
    expect(await busy).toEqual({ ok: true, commits: 1, group: 1 });
  });

  it('hands a lone member the error of its own commit without retrying', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit);
    wire.failing.add('macs/taken');
    const result = group.submit([create('macs/taken')]);
    await wire.settle(0);
    expect(await result).toMatchObject({ ok: false, commits: 1, error: { code: 6 } });
    expect(wire.calls).toHaveLength(1);
  });

  it('never puts two writes to one document in one commit', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 1 });
    void group.submit([create('macs/busy')]);
    void group.submit([create('macs/a'), create('macs/b')]);
    void group.submit([create('macs/b')]); // the same candidate again: a repeated request
    expect(wire.calls.map((c) => paths(c.writes))).toEqual([['macs/busy'], ['macs/a', 'macs/b']]);
    await wire.settle(0);
    await wire.settle(1);
    expect(paths(wire.calls[2]!.writes)).toEqual(['macs/b']);
  });

  it('keeps each commit within maxWrites', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 1, maxWrites: 3 });
    void group.submit([create('macs/busy')]);
    void group.submit([create('macs/a'), create('macs/b')]);
    void group.submit([create('macs/c'), create('macs/d')]);
    expect(wire.calls.map((c) => paths(c.writes))).toEqual([['macs/busy'], ['macs/a', 'macs/b']]);
    await wire.settle(0);
    expect(wire.calls).toHaveLength(2); // [a, b] went out early and still holds the one slot
    await wire.settle(1);
    expect(paths(wire.calls[2]!.writes)).toEqual(['macs/c', 'macs/d']);
  });

  it('stops letting a hung commit hold the queue after stallMs, and frees its slot only once', async () => {
    vi.useFakeTimers();
    try {
      const wire = new Wire();
      const group = new GroupCommit(wire.commit, { maxInFlight: 1, stallMs: 30 });
      void group.submit([create('macs/hung')]);
      const waiting = group.submit([create('macs/next')]);
      expect(wire.calls).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(35);
      expect(wire.calls).toHaveLength(2); // `next` went out at 30 ms and holds the one slot
      wire.calls[0]!.settle(); // the hung commit returns at last: its slot was already given up
      await vi.advanceTimersByTimeAsync(1);
      void group.submit([create('macs/after')]);
      expect(wire.calls).toHaveLength(2); // so `after` still waits for `next`
      wire.calls[1]!.settle();
      await vi.advanceTimersByTimeAsync(1);
      expect(await waiting).toEqual({ ok: true, commits: 1, group: 1 });
      expect(paths(wire.calls[2]!.writes)).toEqual(['macs/after']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('drops a member whose request was answered while it was queued: its writes are never sent', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 1 });
    const answered = new AbortController();
    const waiting = new AbortController();
    void group.submit([create('macs/busy')]);
    const late = group.submit([create('macs/late')], answered.signal);
    const onTime = group.submit([create('macs/on-time')], waiting.signal);
    answered.abort();
    await wire.settle(0);
    expect(wire.calls.map((c) => paths(c.writes))).toEqual([['macs/busy'], ['macs/on-time']]);
    const result = await late;
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ commits: 0 });
    expect(!result.ok && result.error).toBeInstanceOf(DeadlineError);
    await wire.settle(1);
    expect(await onTime).toEqual({ ok: true, commits: 1, group: 1 });
  });

  it('does not retry alone for a member answered while its shared commit was out', async () => {
    const wire = new Wire();
    const group = new GroupCommit(wire.commit, { maxInFlight: 1 });
    const answered = new AbortController();
    void group.submit([create('macs/busy')]);
    const gone = group.submit([create('macs/gone')], answered.signal);
    const taken = group.submit([create('macs/taken')]);
    wire.failing.add('macs/taken');
    await wire.settle(0); // [gone, taken] go out together
    answered.abort();
    await wire.settle(1); // and fail because of `taken`
    expect(wire.calls.slice(2).map((c) => paths(c.writes))).toEqual([['macs/taken']]);
    expect(await gone).toMatchObject({ ok: false, commits: 1 });
    await wire.settle(2);
    expect(await taken).toMatchObject({ ok: false, commits: 2 });
  });

  it('answers every member even when the commit function throws instead of rejecting', async () => {
    const group = new GroupCommit(() => {
      throw new Error('boom');
    });
    expect(await group.submit([create('macs/a')])).toMatchObject({ ok: false, commits: 1, error: { message: 'boom' } });
  });

  it('refuses limits below one', () => {
    expect(() => new GroupCommit(async () => {}, { maxInFlight: 0 })).toThrow(/maxInFlight must be an integer >= 1/);
    expect(() => new GroupCommit(async () => {}, { maxWrites: 1.5 })).toThrow(/maxWrites must be an integer >= 1/);
  });

  it('for any arrivals, failures and completion order: each member is answered once, by the fate of its own writes', async () => {
    const step = fc.oneof(
      fc.record({
        op: fc.constant('submit' as const),
        docs: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 3 }),
      }),
      fc.record({ op: fc.constant('settle' as const), pick: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { maxLength: 40 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { maxLength: 3 }),
        fc.integer({ min: 1, max: 3 }),
        async (steps, failing, maxInFlight) => {
          const wire = new Wire();
          for (const f of failing) wire.failing.add(`macs/${f}`);
          const group = new GroupCommit(wire.commit, { maxInFlight, maxWrites: 5 });
          const members: { docs: string[]; result?: MemberResult; answers: number }[] = [];
          const settled = new Set<number>();
          const settleOne = async (pick: number) => {
            const open = wire.calls.map((_, i) => i).filter((i) => !settled.has(i));
            if (open.length === 0) return;
            const i = open[pick % open.length]!;
            settled.add(i);
            await wire.settle(i);
          };
          for (const s of steps) {
            if (s.op === 'submit') {
              const member: (typeof members)[number] = { docs: s.docs.map((d) => `macs/${d}`), answers: 0 };
              members.push(member);
              void group.submit(member.docs.map(create)).then((r) => {
                member.result = r;
                member.answers++;
              });
            } else await settleOne(s.pick);
          }
          // Drain: settle everything still open, including commits started by the draining itself.
          for (let guard = 0; wire.calls.some((_, i) => !settled.has(i)); guard++) {
            if (guard > 1_000) throw new Error('did not drain');
            await settleOne(0);
          }
          for (const call of wire.calls) {
            expect(new Set(paths(call.writes)).size).toBe(call.writes.length);
            expect(call.writes.length).toBeLessThanOrEqual(5);
          }
          for (const m of members) {
            expect(m.answers).toBe(1);
            expect(m.result!.ok).toBe(!m.docs.some((d) => wire.failing.has(d)));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
