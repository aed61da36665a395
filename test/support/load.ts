/**
 * A mixed admission load and the pool invariants it must keep, for the fault and many-instance tests.
 *
 * The load plays the API server: it sends CREATE, UPDATE, DELETE and dry-run AdmissionReviews for a fleet of
 * VMs, keeps the VMs it would have stored (a CREATE or UPDATE is stored only when allowed, failurePolicy Fail; a
 * DELETE always goes through, failurePolicy Ignore), and resends some requests unchanged, as an API server retry
 * does. One request per VM at a time, as the API server's optimistic concurrency allows.
 *
 * `checkPool` then compares the claims in Firestore with that fleet. A request whose effect the fleet cannot know
 * (it died with its connection, it was denied while its Firestore call may still have landed, or it was allowed
 * without the pool) may leave claims the fleet does not explain; those are reported apart, and a reconcile is
 * what clears them. Everything else must match exactly.
 */
import { randomUUID } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { ClaimDocSchema } from '../../shared/documents.js';
import { canonicalMac } from '../../shared/mac.js';
import { webhookPaths } from './credentials.js';
import { type IfaceSpec, macsOf, mutated, patchOf, review, stored, vm } from './fixtures.js';

export const MUTATE = '/mutate-virtualmachines';

export const OP_KINDS = ['create', 'update-add', 'update-remove', 'delete', 'dry-create', 'dry-update'] as const;
export type OpKind = (typeof OP_KINDS)[number];
export type Mix = Partial<Record<OpKind, number>>;

/** A function instance the load may send to. */
export interface Endpoint {
  readonly id: string;
  /** Base URL of the instance. */
  url: string;
  /**
   * The cluster secret when the instance has one: requests then go to the webhook URLs generated for it, CREATE
   * and UPDATE with the VM credential and DELETE with the release credential, as the API server sends them.
   */
  readonly secret?: string;
  alive: boolean;
  inflight: number;
}

/** The path an API server calls for an operation: the webhook URL of its role when the endpoint has a secret. */
function webhookPath(endpoint: Endpoint, operation: string): string {
  if (endpoint.secret === undefined) return MUTATE;
  const paths = webhookPaths(endpoint.secret);
  return operation === 'DELETE' ? paths.releaseVirtualMachines : paths.mutateVirtualMachines;
}

/** One request and what came back. */
export interface Exchange {
  readonly kind: OpKind | 'repeat';
  /** `namespace/name` of the VM. */
  readonly vm: string;
  readonly uid: string;
  readonly endpoint: string;
  /** When it was sent, in ms since the load started. */
  readonly at: number;
  readonly ms: number;
  readonly status?: number;
  readonly body?: any;
  /** Set when the connection failed: the request died (with its instance, or on the way). */
  readonly error?: string;
  /** MACs the request needed claimed. */
  readonly needs: number;
}

export interface LoadOptions {
  readonly mix: Mix;
  readonly concurrency: number;
  /** Stop after this many operations (repeats not counted)... */
  readonly ops?: number;
  /** ...or once this returns true. */
  readonly until?: () => boolean;
  /** Share of answered requests sent again unchanged to another instance (default 0). */
  readonly repeatRate?: number;
  /** Client-side timeout of one request; well above F1's 8 s. */
  readonly timeoutMs?: number;
  /** Called as each operation starts (e.g. to kill an instance mid-load). */
  readonly onOp?: (n: number) => void | Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 20_000;

/** The fleet of VMs the load drives, as the API server would have stored them, and every exchange. */
export class Fleet {
  /** Stored VMs by `namespace/name`. */
  readonly live = new Map<string, any>();
  readonly exchanges: Exchange[] = [];
  /** Contract violations seen in answers (allowed without a MAC, a MAC handed to two VMs, a denied DELETE). */
  readonly violations: string[] = [];
  /** Repeats whose answer differed from the first answer. */
  readonly repeatMismatches: string[] = [];
  /** Request uids of dry runs (they must never be recorded on a claim). */
  readonly dryUids = new Set<string>();
  private readonly busy = new Set<string>();
  private readonly frozen = new Set<string>();
  private readonly assigned = new Map<string, string>();
  private next = 0;
  private readonly started = performance.now();

  constructor(
    readonly endpoints: Endpoint[],
    readonly prefix = `vm-${randomUUID().slice(0, 4)}`,
    readonly namespaces: readonly string[] = ['ns-a', 'ns-b'],
  ) {}

  /** ms since the fleet was created. */
  now(): number {
    return performance.now() - this.started;
  }

  /** Runs the load until `ops` operations were done or `until()` is true. */
  async run(o: LoadOptions): Promise<void> {
    let done = 0;
    const more = () => (o.ops === undefined || done < o.ops) && !(o.until?.() ?? false);
    const worker = async () => {
      while (more()) {
        const n = done++;
        await o.onOp?.(n);
        await this.step(o);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  }

  /** Exchanges of the given kinds. */
  of(...kinds: (OpKind | 'repeat')[]): Exchange[] {
    return this.exchanges.filter((e) => kinds.includes(e.kind));
  }

  /** The stored VMs as `kubectl get virtualmachines -A -o json` prints them. */
  inventory(): { apiVersion: string; kind: string; items: any[]; metadata: Record<string, string> } {
    return { apiVersion: 'v1', kind: 'List', items: [...this.live.values()], metadata: { resourceVersion: '' } };
  }

  private async step(o: LoadOptions): Promise<void> {
    const kind = this.choose(o.mix);
    const key = kind === 'create' || kind === 'dry-create' ? undefined : this.takeLive(kind);
    if (kind !== 'create' && kind !== 'dry-create' && key === undefined) {
      // Nothing to update or delete yet: create instead.
      await this.create(o, false);
      return;
    }
    try {
      switch (kind) {
        case 'create':
        case 'dry-create':
          await this.create(o, kind === 'dry-create');
          return;
        case 'update-add':
          return await this.update(o, key!, 'add', false);
        case 'dry-update':
          return await this.update(o, key!, 'add', true);
        case 'update-remove':
          return await this.update(o, key!, 'remove', false);
        case 'delete':
          return await this.remove(o, key!);
        default:
          return kind satisfies never;
      }
    } finally {
      if (key !== undefined) this.busy.delete(key);
    }
  }

  /**
   * One CREATE needing a MAC, sent now and outside the mix, recorded like any other: a test that must see how a
   * request needing a MAC fares at a given moment cannot leave that to the mix's dice.
   */
  async probe(): Promise<Exchange> {
    return this.create({ mix: {}, concurrency: 1 }, false);
  }

  private async create(o: LoadOptions, dryRun: boolean): Promise<Exchange> {
    const n = this.next++;
    const name = `${dryRun ? 'dry-' : ''}${this.prefix}-${n}`;
    const namespace = this.namespaces[n % this.namespaces.length]!;
    const ifaces: IfaceSpec[] = [{ name: 'default' }];
    if (n % 2 === 1) ifaces.push({ name: 'net1', network: 'multus' });
    const req = review('CREATE', vm(name, namespace, ifaces), null, { dryRun });
    const key = `${namespace}/${name}`;
    const ex = await this.send(o, dryRun ? 'dry-create' : 'create', key, req, ifaces.length);
    if (!allowed(ex)) return ex;
    const object = this.admitted(
      key,
      req,
      ex,
      ifaces.map((i) => i.name),
    );
    if (!dryRun && object) {
      // Stored, but no other request may touch it before its repeat: an API server retries a CREATE only
      // until the VM is stored.
      this.busy.add(key);
      this.live.set(key, stored(req, ex.body, randomUUID()));
      try {
        await this.maybeRepeat(o, ex, req);
      } finally {
        this.busy.delete(key);
      }
    }
    return ex;
  }

  private async update(o: LoadOptions, key: string, change: 'add' | 'remove', dryRun: boolean): Promise<void> {
    const old = this.live.get(key)!;
    const next = structuredClone(old);
    const spec = next.spec.template.spec;
    let added: string | undefined;
    if (change === 'add') {
      added = `hot${spec.domain.devices.interfaces.length}-${this.next++}`;
      spec.domain.devices.interfaces.push({ name: added, bridge: {} });
      spec.networks.push({ name: added, multus: { networkName: `${added}-nad` } });
    } else {
      spec.domain.devices.interfaces.pop();
      spec.networks.pop();
    }
    const req = review('UPDATE', next, old, { dryRun });
    const ex = await this.send(o, dryRun ? 'dry-update' : `update-${change}`, key, req, added ? 1 : 0);
    if (!allowed(ex)) return;
    const object = this.admitted(key, req, ex, added ? [added] : []);
    if (!dryRun && object) {
      this.live.set(key, object);
      await this.maybeRepeat(o, ex, req);
    }
  }

  private async remove(o: LoadOptions, key: string): Promise<void> {
    const old = this.live.get(key)!;
    const req = review('DELETE', null, old);
    const ex = await this.send(o, 'delete', key, req, 0);
    // failurePolicy Ignore: the VM is deleted whatever the webhook answered, or if it never answered.
    this.live.delete(key);
    if (ex.error === undefined && !allowed(ex)) this.violations.push(`DELETE of ${key} was denied: ${denial(ex)}`);
    else if (allowed(ex)) await this.maybeRepeat(o, ex, req);
  }

  /** Checks an allowed answer: every interface that needed a MAC has one, and no MAC went to two VMs. */
  private admitted(key: string, req: any, ex: Exchange, needing: string[]): any {
    let object: any;
    try {
      object = mutated(req, ex.body);
    } catch (e) {
      this.violations.push(`${ex.kind} of ${key}: ${String(e)}`);
      return undefined;
    }
    const macs = macsOf(object);
    for (const iface of needing) {
      const mac = macs[iface];
      if (mac === undefined || canonicalMac(mac) === undefined) {
        this.violations.push(`${ex.kind} of ${key} was allowed without a MAC for interface ${iface}`);
        continue;
      }
      if (ex.kind === 'dry-create' || ex.kind === 'dry-update') continue; // a dry run claims nothing
      const canonical = canonicalMac(mac)!;
      const holder = this.assigned.get(canonical);
      if (holder !== undefined && holder !== key)
        this.violations.push(`MAC ${canonical} handed to ${holder} and ${key}`);
      this.assigned.set(canonical, key);
    }
    return object;
  }

  private async maybeRepeat(o: LoadOptions, first: Exchange, req: any): Promise<void> {
    if (Math.random() >= (o.repeatRate ?? 0)) return;
    const again = await this.send(o, 'repeat', first.vm, req, first.needs, first.endpoint);
    if (again.error !== undefined) return;
    if (JSON.stringify(again.body) !== JSON.stringify(first.body)) {
      this.repeatMismatches.push(
        `${first.kind} ${first.vm} (${first.uid}): ${JSON.stringify(first.body)} then ${JSON.stringify(again.body)}`,
      );
    }
  }

  private async send(
    o: LoadOptions,
    kind: Exchange['kind'],
    key: string,
    req: any,
    needs: number,
    avoid?: string,
  ): Promise<Exchange> {
    const endpoint = await this.pick(avoid);
    const at = this.now();
    const started = performance.now();
    endpoint.inflight++;
    let ex: Exchange;
    try {
      const res = await fetch(endpoint.url + webhookPath(endpoint, req.request.operation), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(req),
        signal: AbortSignal.timeout(o.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      ex = {
        kind,
        vm: key,
        uid: req.request.uid,
        endpoint: endpoint.id,
        at,
        ms: performance.now() - started,
        status: res.status,
        body,
        needs,
      };
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      ex = {
        kind,
        vm: key,
        uid: req.request.uid,
        endpoint: endpoint.id,
        at,
        ms: performance.now() - started,
        error: cause ?? String(e),
        needs,
      };
    } finally {
      endpoint.inflight--;
    }
    if (kind === 'dry-create' || kind === 'dry-update') this.dryUids.add(ex.uid);
    this.exchanges.push(ex);
    return ex;
  }

  /** An alive endpoint, round robin, other than `avoid` when there is a choice. */
  private async pick(avoid?: string): Promise<Endpoint> {
    for (;;) {
      const alive = this.endpoints.filter((e) => e.alive);
      const choices = alive.length > 1 ? alive.filter((e) => e.id !== avoid) : alive;
      if (choices.length > 0) return choices[Math.floor(Math.random() * choices.length)]!;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private choose(mix: Mix): OpKind {
    const entries = Object.entries(mix) as [OpKind, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let r = Math.random() * total;
    for (const [kind, w] of entries) if ((r -= w) < 0) return kind;
    return entries[0]![0];
  }

  /**
   * A stored VM, picked at random among those no request is working on and not frozen, marked busy; for
   * `update-remove` one with two interfaces.
   */
  private takeLive(kind: OpKind): string | undefined {
    const candidates = [...this.live].filter(
      ([key, object]) =>
        !this.busy.has(key) &&
        !this.frozen.has(key) &&
        (kind !== 'update-remove' || object.spec.template.spec.domain.devices.interfaces.length >= 2),
    );
    if (candidates.length === 0) return undefined;
    const key = candidates[Math.floor(Math.random() * candidates.length)]![0];
    this.busy.add(key);
    return key;
  }

  /** Leaves the VMs stored now alone from here on (no UPDATE or DELETE); returns how many MACs they carry. */
  freeze(): number {
    let macs = 0;
    for (const [key, object] of this.live) {
      this.frozen.add(key);
      macs += Object.values(macsOf(object)).filter((m) => m !== undefined).length;
    }
    return macs;
  }
}

export function allowed(ex: Exchange): boolean {
  return ex.error === undefined && ex.body?.response?.allowed === true;
}

export function denial(ex: Exchange): string {
  return ex.error ?? ex.body?.response?.status?.message ?? `HTTP ${ex.status}: ${JSON.stringify(ex.body)}`;
}

/** Request uids whose log line says the pool was bypassed (`allowed-without-pool`, `allowed-without-release`). */
export function failOpenUids(lines: readonly Record<string, unknown>[]): Set<string> {
  const out = new Set<string>();
  for (const l of lines) {
    if (
      typeof l.requestUid === 'string' &&
      (l.outcome === 'allowed-without-pool' || l.outcome === 'allowed-without-release')
    )
      out.add(l.requestUid);
  }
  return out;
}

/** JSON log lines of a process's output. */
export function jsonLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

export interface PoolCheck {
  readonly claims: number;
  readonly active: number;
  /** Claim documents that do not parse (half-written or broken). */
  readonly corrupt: string[];
  /** A MAC carried by two stored VMs, or carried by a VM while another VM's active claim holds it. */
  readonly duplicates: string[];
  /** Stored VMs' MACs without an active claim of their own. */
  readonly missing: string[];
  /** Active claims whose owner is not stored or does not carry the MAC. */
  readonly orphans: string[];
  /** `missing` and `orphans` that no uncertain request explains. */
  readonly unexplained: string[];
  /** Claims written by a dry run. */
  readonly dryWrites: string[];
  /** CREATEs (of VMs nothing touched afterwards) that left some but not all of their claims. */
  readonly partial: string[];
  /** What a reconcile should heal: stored MACs whose claim is absent or released (R3). */
  readonly healable: number;
  /** What a reconcile should leave alone while young and release once old (R2): the orphans. */
  readonly releasable: number;
}

/**
 * Compares the claims with the fleet. `failOpen` are the uids logged as allowed without the pool; requests that
 * died or were denied are uncertain by themselves.
 */
export async function checkPool(
  db: Firestore,
  fleet: Fleet,
  options: { cluster: string; failOpen?: ReadonlySet<string> },
): Promise<PoolCheck> {
  const snap = await db.collection('macs').get();
  const docs = new Map<string, any>();
  const corrupt: string[] = [];
  for (const d of snap.docs) {
    const parsed = ClaimDocSchema.safeParse(d.data());
    if (!parsed.success || parsed.data.mac !== d.id) corrupt.push(`${d.id}: ${JSON.stringify(d.data())}`);
    else docs.set(d.id, parsed.data);
  }

  // Requests whose effect is unknown, by uid, and the VMs a DELETE or a release-only UPDATE may have left stale.
  const uncertainUids = new Set<string>();
  const uncertainVms = new Set<string>();
  for (const ex of fleet.exchanges) {
    const unknown = ex.error !== undefined || !allowed(ex) || options.failOpen?.has(ex.uid) === true;
    if (!unknown || ex.kind === 'dry-create' || ex.kind === 'dry-update') continue;
    uncertainUids.add(ex.uid);
    if (ex.kind === 'delete' || ex.kind === 'update-remove') uncertainVms.add(ex.vm);
  }

  const carriers = new Map<string, string[]>();
  for (const [key, object] of fleet.live) {
    for (const mac of Object.values(macsOf(object))) {
      if (mac === undefined) continue;
      const canonical = canonicalMac(mac)!;
      carriers.set(canonical, [...(carriers.get(canonical) ?? []), key]);
    }
  }

  const duplicates: string[] = [];
  const missing: string[] = [];
  const orphans: string[] = [];
  const unexplained: string[] = [];
  let healable = 0;
  for (const [mac, keys] of carriers) {
    if (keys.length > 1) duplicates.push(`${mac} carried by ${keys.join(', ')}`);
    const doc = docs.get(mac);
    const active = doc !== undefined && doc.state !== 'released';
    const owner = active ? `${doc.namespace}/${doc.name}` : undefined;
    for (const key of keys) {
      if (owner === key && doc.cluster === options.cluster) continue;
      if (active) {
        duplicates.push(`${mac} carried by ${key} but claimed by ${doc.cluster}/${owner}`);
        continue;
      }
      healable++;
      const why = `${mac} of ${key}: ${doc === undefined ? 'no claim' : `claim ${doc.state} by ${doc.requestUid}`}`;
      missing.push(why);
      if (!(uncertainVms.has(key) || (doc !== undefined && uncertainUids.has(doc.requestUid)))) unexplained.push(why);
    }
  }
  let active = 0;
  for (const [mac, doc] of docs) {
    if (doc.state === 'released') continue;
    active++;
    if (doc.cluster !== options.cluster) continue;
    const owner = `${doc.namespace}/${doc.name}`;
    if ((carriers.get(mac) ?? []).includes(owner)) continue;
    const why = `${mac} claimed ${doc.state} for ${owner} by ${doc.requestUid}`;
    orphans.push(why);
    if (!(uncertainUids.has(doc.requestUid) || uncertainVms.has(owner))) unexplained.push(why);
  }

  const dryWrites = [...docs.values()]
    .filter((d) => fleet.dryUids.has(d.requestUid) || d.name.startsWith('dry-'))
    .map((d) => `${d.mac} by ${d.requestUid}`);

  // All or none (V3): a CREATE leaves every claim it needed or none, unless a later request changed them.
  const lastExchange = new Map<string, Exchange>();
  for (const ex of fleet.exchanges) if (ex.kind !== 'repeat') lastExchange.set(ex.vm, ex);
  const byRequest = new Map<string, number>();
  for (const d of docs.values()) byRequest.set(d.requestUid, (byRequest.get(d.requestUid) ?? 0) + 1);
  const partial = fleet
    .of('create')
    .filter((ex) => lastExchange.get(ex.vm) === ex)
    .flatMap((ex) => {
      const n = byRequest.get(ex.uid) ?? 0;
      const ok = allowed(ex) ? n === ex.needs : n === 0 || n === ex.needs;
      return ok ? [] : [`CREATE ${ex.vm} (${ex.uid}, ${allowed(ex) ? 'allowed' : denial(ex)}): ${n} of ${ex.needs}`];
    });

  return {
    claims: docs.size + corrupt.length,
    active,
    corrupt,
    duplicates,
    missing,
    orphans,
    unexplained,
    dryWrites,
    partial,
    healable,
    releasable: orphans.length,
  };
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export { patchOf };
