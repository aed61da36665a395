import {
  AggregateField,
  FieldPath,
  FieldValue,
  type Query,
  type DocumentSnapshot,
  type Firestore,
  type Precondition,
  type QueryDocumentSnapshot,
  type Timestamp,
} from '@google-cloud/firestore';
import type { Owner, ReadState, Snapshot, Version, Write } from './allocator.js';
import {
  claimPath,
  ClaimDocSchema,
  COLLECTIONS,
  type ClaimDoc,
  NamespaceDocSchema,
  type OwnerKind,
} from './documents.js';
import { BUCKET_FIELDS, FANOUT, type Figures } from './fingerprint.js';
import { formatMac, type Mac } from './mac.js';

/** How a commit ended when it did not succeed. */
export const COMMIT_FAILURES = ['conflict', 'transient'] as const;
export type CommitFailure = (typeof COMMIT_FAILURES)[number];

// gRPC status codes.
const ABORTED = 10;
const ALREADY_EXISTS = 6;
const FAILED_PRECONDITION = 9;
const NOT_FOUND = 5;
const TRANSIENT = new Set([
  1 /* CANCELLED */, 2 /* UNKNOWN */, 4 /* DEADLINE_EXCEEDED */, 13 /* INTERNAL */, 14 /* UNAVAILABLE */,
  8 /* RESOURCE_EXHAUSTED */,
]);

/**
 * A claim document seen by a range scan. Only released claims are parsed (automatic allocation may reuse
 * them after their cool-down); any other state just means "taken".
 */
export interface ScannedClaim {
  readonly mac: string;
  readonly released: Snapshot<ClaimDoc> | undefined;
}

/**
 * Document reads as Firestore bills them: one per document a lookup asks for or a query returns, at least one per
 * query, and one per up to 1,000 index entries an aggregation counts.
 */
export class ReadMeter {
  reads = 0;
  documents(n: number): void {
    this.reads += n;
  }
  query(returned: number): void {
    this.reads += Math.max(1, returned);
  }
  aggregation(entries: number): void {
    this.reads += Math.max(1, Math.ceil(entries / 1000));
  }
}

/** Firestore access for the pool: batched reads, range scans and precondition-guarded commits. */
export class Store {
  constructor(
    readonly db: Firestore,
    readonly meter: ReadMeter = new ReadMeter(),
  ) {}

  /** The same database, with its own read meter (a reconcile counts what it reads). */
  metered(): Store {
    return new Store(this.db, new ReadMeter());
  }

  /** Reads claims in a single round trip (null for those that do not exist). Reads take no locks. */
  async read(macs: Iterable<string>): Promise<ReadState> {
    const unique = [...new Set(macs)];
    this.meter.documents(unique.length);
    const snaps = unique.length === 0 ? [] : await this.db.getAll(...unique.map((m) => this.db.doc(claimPath(m))));
    const claims = new Map<string, Snapshot<ClaimDoc> | null>();
    unique.forEach((mac, i) =>
      claims.set(
        mac,
        toSnapshot(snaps[i]!, (d) => ClaimDocSchema.safeParse(d)),
      ),
    );
    return { claims };
  }

  /**
   * The claims recorded for a VM: by owner, or by request uid while a generateName VM has no name (V12).
   * Equality filters only, which Firestore serves without a composite index.
   */
  async claimsOf(owner: Owner, requestUid: string): Promise<Map<string, Snapshot<ClaimDoc>>> {
    const macs = this.db.collection(COLLECTIONS.macs);
    const query =
      owner.name === ''
        ? macs.where('requestUid', '==', requestUid)
        : macs
            .where('cluster', '==', owner.cluster)
            .where('namespace', '==', owner.namespace)
            .where('name', '==', owner.name);
    const snap = await query.get();
    return new Map(snap.docs.map((d) => [d.id, toSnapshot(d, (x) => ClaimDocSchema.safeParse(x))!]));
  }

  /**
   * Claims whose ids lie in `[from, to]` (a sub-range of the pool), in id order, at most `limit`. Canonical
   * MAC ids have a fixed width, so id order is numeric order.
   */
  async scan(from: Mac, to: Mac, limit: number): Promise<ScannedClaim[]> {
    const snap = await this.db
      .collection(COLLECTIONS.macs)
      .where(FieldPath.documentId(), '>=', formatMac(from))
      .where(FieldPath.documentId(), '<=', formatMac(to))
      .orderBy(FieldPath.documentId())
      .limit(limit)
      .get();
    return snap.docs.map((d) => ({
      mac: d.id,
      released: d.get('state') === 'released' ? toSnapshot(d, (x) => ClaimDocSchema.safeParse(x))! : undefined,
    }));
  }

  /**
   * Commits the writes atomically. The transaction only writes: every write carries its own precondition, so
   * it holds no read locks and never waits on another request. `maxAttempts: 1` because a failed
   * precondition must be re-planned from fresh reads, not replayed; the caller loops.
   */
  async commit(writes: readonly Write[]): Promise<void> {
    if (writes.length === 0) return;
    await this.db.runTransaction(
      async (tx) => {
        for (const w of writes) {
          const ref = this.db.doc(w.path);
          switch (w.kind) {
            case 'create':
              tx.create(ref, w.data);
              break;
            case 'update':
              tx.update(ref, withDeletes(w.data, w.optional), { lastUpdateTime: w.version as unknown as Timestamp });
              break;
            case 'set':
              tx.set(ref, w.data, { merge: w.merge === true });
              break;
            case 'delete':
              if (w.version === undefined) tx.delete(ref);
              else tx.delete(ref, { lastUpdateTime: w.version as unknown as Timestamp } satisfies Precondition);
              break;
            default:
              w satisfies never;
          }
        }
      },
      { maxAttempts: 1 },
    );
  }

  /** Reads many claims, in chunks so no single call grows without bound. */
  async readMany(macs: Iterable<string>, chunk = 500): Promise<Map<string, Snapshot<ClaimDoc> | null>> {
    const all = [...new Set(macs)];
    const out = new Map<string, Snapshot<ClaimDoc> | null>();
    for (let i = 0; i < all.length; i += chunk) {
      const state = await this.read(all.slice(i, i + chunk));
      for (const [mac, snap] of state.claims) out.set(mac, snap);
    }
    return out;
  }

  /** Every claim recorded for a cluster (one query, streamed). */
  async claimsOfCluster(cluster: string): Promise<Map<string, Snapshot<ClaimDoc>>> {
    return this.claimsWhere(this.db.collection(COLLECTIONS.macs).where('cluster', '==', cluster));
  }

  /** The claims of a cluster a reconcile reads on every run: pending ones and unconfirmed releases (R7). */
  async unsettledClaims(cluster: string): Promise<Map<string, Snapshot<ClaimDoc>>> {
    const macs = this.db.collection(COLLECTIONS.macs);
    return this.claimsWhere(macs.where('cluster', '==', cluster).where('unsettled', '==', true));
  }

  /** The claims of a cluster in one cell prefix (1 to 3 bucket numbers), of one kind or of both (R7). */
  async claimsInCell(
    cluster: string,
    kind: OwnerKind | undefined,
    prefix: readonly number[],
  ): Promise<Map<string, Snapshot<ClaimDoc>>> {
    return this.claimsWhere(cellQuery(this.db, cluster, kind, prefix));
  }

  /**
   * Count and digest sum of the cluster's bound claims (of one kind, or both) in each of the 32 cells below the
   * prefix: 32 aggregation queries with equality filters only (R7).
   */
  async cellFigures(cluster: string, kind: OwnerKind | undefined, prefix: readonly number[]): Promise<Figures[]> {
    return Promise.all(
      Array.from({ length: FANOUT }, async (_, b) => {
        const query = cellQuery(this.db, cluster, kind, [...prefix, b]).where('state', '==', 'bound');
        const snap = await query.aggregate({ count: AggregateField.count(), sum: AggregateField.sum('digest') }).get();
        const { count, sum } = snap.data();
        this.meter.aggregation(count);
        return { count, sum: Number(sum ?? 0) };
      }),
    );
  }

  /** Count and digest sum of a cluster's namespace documents (R7). */
  async namespaceFigures(cluster: string): Promise<Figures> {
    const snap = await this.db
      .collection(`${COLLECTIONS.clusters}/${cluster}/${COLLECTIONS.namespaces}`)
      .aggregate({ count: AggregateField.count(), sum: AggregateField.sum('digest') })
      .get();
    const { count, sum } = snap.data();
    this.meter.aggregation(count);
    return { count, sum: Number(sum ?? 0) };
  }

  private async claimsWhere(query: Query): Promise<Map<string, Snapshot<ClaimDoc>>> {
    const out = new Map<string, Snapshot<ClaimDoc>>();
    for await (const doc of query.stream() as AsyncIterable<QueryDocumentSnapshot>) {
      out.set(
        doc.id,
        toSnapshot(doc, (x) => ClaimDocSchema.safeParse(x))!,
      );
    }
    this.meter.query(out.size);
    return out;
  }

  /**
   * Applies writes one by one (not atomically), each guarded by its own precondition, for bulk work such as
   * a reconcile: a write whose document changed meanwhile fails alone and is counted, the rest go through.
   */
  async applyEach(writes: readonly Write[], onDone?: (done: number) => void): Promise<{ failed: number }> {
    const writer = this.db.bulkWriter();
    let done = 0;
    let failed = 0;
    writer.onWriteError(() => false); // a failed precondition will not succeed on retry
    const results = writes.map((w) => {
      const ref = this.db.doc(w.path);
      const op = (() => {
        switch (w.kind) {
          case 'create':
            return writer.create(ref, w.data);
          case 'set':
            return writer.set(ref, w.data, { merge: w.merge === true });
          case 'update':
            return writer.update(ref, withDeletes(w.data, w.optional), {
              lastUpdateTime: w.version as unknown as Timestamp,
            });
          case 'delete':
            return w.version === undefined
              ? writer.delete(ref)
              : writer.delete(ref, { lastUpdateTime: w.version as unknown as Timestamp });
          default:
            return w satisfies never;
        }
      })();
      return op.then(
        () => onDone?.(++done),
        () => {
          failed++;
          onDone?.(++done);
        },
      );
    });
    await writer.close();
    await Promise.all(results);
    return { failed };
  }

  /** The mirrored labels, and digest (R7), of every namespace document of a cluster. */
  async namespaceDocs(
    cluster: string,
  ): Promise<Map<string, { labels: Record<string, string>; digest: number | undefined }>> {
    const snap = await this.db.collection(`${COLLECTIONS.clusters}/${cluster}/${COLLECTIONS.namespaces}`).get();
    this.meter.query(snap.size);
    return new Map(
      snap.docs.map((d) => {
        const parsed = NamespaceDocSchema.safeParse(d.data());
        return [d.id, { labels: parsed.data?.labels ?? {}, digest: parsed.data?.digest }];
      }),
    );
  }

  /** Reads a document's data, or undefined when it does not exist. */
  async get(path: string): Promise<Record<string, unknown> | undefined> {
    this.meter.documents(1);
    const snap = await this.db.doc(path).get();
    return snap.exists ? (snap.data() as Record<string, unknown>) : undefined;
  }
}

/**
 * The composite indexes the reconcile's cell aggregations need (count and sum of `digest` over equality filters),
 * one per filter set; terraform/firestore.tf declares the same.
 */
export const RECONCILE_INDEXES: readonly (readonly string[])[] = [false, true].flatMap((byKind) =>
  [1, 2, 3].map((depth) => [
    'cluster',
    ...(byKind ? ['kind'] : []),
    'state',
    ...BUCKET_FIELDS.slice(0, depth),
    'digest',
  ]),
);

/** The claims of a cluster in a cell prefix, optionally of one kind. */
function cellQuery(db: Firestore, cluster: string, kind: OwnerKind | undefined, prefix: readonly number[]): Query {
  let query: Query = db.collection(COLLECTIONS.macs).where('cluster', '==', cluster);
  if (kind !== undefined) query = query.where('kind', '==', kind);
  prefix.forEach((b, i) => (query = query.where(BUCKET_FIELDS[i]!, '==', b)));
  return query;
}

/** Sorts a Firestore error into a conflict (re-plan), a transient failure (retry), or neither (rethrow). */
export function classifyCommitError(error: unknown): CommitFailure | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === ALREADY_EXISTS || code === FAILED_PRECONDITION || code === ABORTED || code === NOT_FOUND)
    return 'conflict';
  if (typeof code === 'number' && TRANSIENT.has(code)) return 'transient';
  return undefined;
}

/** The update's data, deleting the optional fields it does not set (an update merges otherwise). */
function withDeletes(data: Record<string, unknown>, optional: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const field of optional) if (!(field in out)) out[field] = FieldValue.delete();
  return out;
}

function toSnapshot<T>(
  snap: DocumentSnapshot,
  parse: (data: unknown) => { success: true; data: T } | { success: false },
): Snapshot<T> | null {
  if (!snap.exists) return null;
  const parsed = parse(snap.data());
  // A document an operator broke is never treated as free: it stays "in use" until someone fixes it.
  return { data: parsed.success ? parsed.data : 'corrupt', version: snap.updateTime as unknown as Version };
}
