import { z } from 'zod';
import { COLLECTIONS, NamespaceDocSchema, namespacePath, RANGE_DOC_ID, SETTINGS_DOC_ID } from './documents.js';
import { CONFIG_DOCUMENT_PATH } from './errors.js';
import { NAMESPACE_OPT_LABEL, OPT_IN_VALUE, OPT_OUT_VALUE } from './kubevirt.js';
import type { Logger } from './log.js';
import { DEFAULT_RANGE_END, DEFAULT_RANGE_START } from './range.js';
import type { Store } from './store.js';
import { type UsableSet, validatePool } from './usable.js';
import { OPT_MODES, type OptMode } from './webhooks.js';

export const RANGE_DOC_PATH = `${COLLECTIONS.config}/${RANGE_DOC_ID}`;
export const SETTINGS_DOC_PATH = `${COLLECTIONS.config}/${SETTINGS_DOC_ID}`;

/** Operator settings in `config/settings`; every field optional, defaults as KubeMacPool's. */
export const SettingsSchema = z.object({
  optMode: z.enum(OPT_MODES).default('opt-out'),
  /** M4: the opt mode of the pod webhook, with the namespace label `mutatepods.kubemacpool.io`; opt-in like KMP's. */
  podOptMode: z.enum(OPT_MODES).default('opt-in'),
  /** U5: how long a released MAC rests before automatic allocation may hand it out again. */
  cooldownSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3600)
    .default(600),
  /** R2: how old a pending claim must be before a reconcile may release it. */
  waitTimeSeconds: z
    .number()
    .int()
    .min(30)
    .max(24 * 3600)
    .default(300),
  /** R8: a reconcile that would release more than this share of the cluster's bound claims writes nothing. */
  releaseGuardPercent: z.number().min(0).max(100).default(10),
});
export type Settings = z.infer<typeof SettingsSchema>;
export const DEFAULT_SETTINGS: Settings = SettingsSchema.parse({});

export interface PoolConfig {
  /** The MACs automatic allocation hands out (C5, C6). */
  readonly usable: UsableSet;
  readonly rangeWarnings: readonly string[];
  readonly settings: Settings;
}

export type ConfigResult = { ok: true; config: PoolConfig } | { ok: false; reason: string };

/**
 * Parses the two config documents. The range falls back to KMP's default only when its document is absent;
 * a document that exists but is invalid is an error (C3 decides what to do with it).
 */
export function parsePoolConfig(
  rangeDoc: Record<string, unknown> | undefined,
  settingsDoc: Record<string, unknown> | undefined,
): { range: ConfigResult; settings: { ok: true; settings: Settings } | { ok: false; reason: string } } {
  const result = validatePool(rangeDoc ?? { rangeStart: DEFAULT_RANGE_START, rangeEnd: DEFAULT_RANGE_END });
  const parsedSettings = SettingsSchema.safeParse(settingsDoc ?? {});
  const settings = parsedSettings.success
    ? ({ ok: true, settings: parsedSettings.data } as const)
    : ({
        ok: false,
        reason: `${SETTINGS_DOC_PATH}: ${parsedSettings.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      } as const);
  const range: ConfigResult = result.ok
    ? {
        ok: true,
        config: {
          usable: result.usable,
          rangeWarnings: result.warnings,
          settings: settings.ok ? settings.settings : DEFAULT_SETTINGS,
        },
      }
    : { ok: false, reason: `${CONFIG_DOCUMENT_PATH}: ${result.message}` };
  return { range, settings };
}

/**
 * A value read from Firestore and kept for `freshMs`; older than `maxAgeMs` it is not served at all. Between
 * the two it is served while one refresh runs in the background, so requests rarely wait on a read.
 */
export class Cached<T> {
  private value: { at: number; v: T } | undefined;
  private inflight: Promise<T> | undefined;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly now: () => number,
    private readonly freshMs: number,
    private readonly maxAgeMs: number,
  ) {}

  /** The value, synchronously while it may be served (the hot path allocates no promise), else a load. */
  get(): T | Promise<T> {
    const age = this.value === undefined ? Infinity : this.now() - this.value.at;
    if (age <= this.freshMs) return this.value!.v;
    const refresh = this.refresh();
    if (age <= this.maxAgeMs) {
      refresh.catch(() => undefined); // the next request past maxAge will see the failure
      return this.value!.v;
    }
    return refresh;
  }

  /** Drops the value: the next get() loads. */
  invalidate(): void {
    this.value = undefined;
  }

  private refresh(): Promise<T> {
    this.inflight ??= this.load()
      .then((v) => {
        this.value = { at: this.now(), v };
        return v;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }
}

/** C2: a change to the config documents is served within 10 s (fresh 5 s, never older than 10 s). */
export const CONFIG_FRESH_MS = 5_000;
export const CONFIG_MAX_AGE_MS = 10_000;

/**
 * The pool configuration as the function serves it. C3: an invalid range document never stops service when
 * a valid range was seen before (the last valid one stays, an error is logged once per change); with none
 * ever valid, allocations are denied with the reason.
 */
export class ConfigSource {
  private lastValid: PoolConfig | undefined;
  private lastProblem: string | undefined;
  private readonly cache: Cached<ConfigResult>;

  constructor(store: Store, log: Logger, now: () => number = Date.now) {
    this.cache = new Cached(
      async () => {
        const [rangeDoc, settingsDoc] = await Promise.all([store.get(RANGE_DOC_PATH), store.get(SETTINGS_DOC_PATH)]);
        const parsed = parsePoolConfig(rangeDoc, settingsDoc);
        const problem = [
          parsed.range.ok ? undefined : parsed.range.reason,
          parsed.settings.ok ? undefined : parsed.settings.reason,
        ]
          .filter((p) => p !== undefined)
          .join('; ');
        if (problem !== '' && problem !== this.lastProblem) {
          log('ERROR', 'invalid MAC pool configuration', {
            problem,
            kept: this.lastValid?.usable.key,
          });
        }
        this.lastProblem = problem;
        if (parsed.range.ok) {
          const next = parsed.settings.ok
            ? parsed.range.config
            : { ...parsed.range.config, settings: this.lastValid?.settings ?? DEFAULT_SETTINGS };
          if (this.lastValid === undefined || this.lastValid.usable.key !== next.usable.key) {
            log('INFO', 'MAC pool range in effect', {
              range: next.usable.key,
              usableMacs: next.usable.size.toString(),
              warnings: next.rangeWarnings,
            });
          }
          this.lastValid = next;
          return { ok: true, config: next } as const;
        }
        return this.lastValid ? ({ ok: true, config: this.lastValid } as const) : parsed.range;
      },
      now,
      CONFIG_FRESH_MS,
      CONFIG_MAX_AGE_MS,
    );
  }

  get(): ConfigResult | Promise<ConfigResult> {
    return this.cache.get();
  }

  invalidate(): void {
    this.cache.invalidate();
  }
}

/**
 * Whether the pool serves a namespace, from its mirrored labels and the opt mode: the VM label by default (V9), the
 * pod label for pods (M4).
 */
export function namespaceManaged(
  labels: Readonly<Record<string, string>>,
  mode: OptMode,
  label: string = NAMESPACE_OPT_LABEL,
): boolean {
  const value = labels[label];
  return mode === 'opt-in' ? value === OPT_IN_VALUE : value !== OPT_OUT_VALUE;
}

/** The labels of `clusters/{cluster}/namespaces/{namespace}`, cached per namespace like the config. */
export class NamespaceSource {
  private readonly caches = new Map<string, Cached<Record<string, string>>>();
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  invalidate(cluster: string, namespace: string): void {
    this.caches.get(`${cluster}/${namespace}`)?.invalidate();
  }

  labels(cluster: string, namespace: string): Record<string, string> | Promise<Record<string, string>> {
    const key = `${cluster}/${namespace}`;
    let cache = this.caches.get(key);
    if (cache === undefined) {
      if (this.caches.size >= NamespaceSource.MAX_ENTRIES) this.caches.clear();
      cache = new Cached(
        async () => {
          const parsed = NamespaceDocSchema.safeParse((await this.store.get(namespacePath(cluster, namespace))) ?? {});
          // A broken namespace document counts as unlabelled: in opt-out mode the namespace stays served.
          return parsed.success ? parsed.data.labels : {};
        },
        this.now,
        CONFIG_FRESH_MS,
        CONFIG_MAX_AGE_MS,
      );
      this.caches.set(key, cache);
    }
    return cache.get();
  }
}
