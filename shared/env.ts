import { z } from 'zod';
import { ROLES, roleCredential } from './credentials.js';

/** Cluster names are DNS labels, so they fit Firestore ids, log fields and URLs unchanged. */
export const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Tokens travel in URL paths (`/t/<token>/...`), so only unreserved URL characters are allowed. */
export const TOKEN = /^[A-Za-z0-9._~-]{16,256}$/;
export const DEFAULT_CLUSTER = 'default';
/** Project id used against the emulator when GOOGLE_CLOUD_PROJECT is not set. */
export const DEV_PROJECT = 'macpool-dev';
export const DEFAULT_PORT = 8080;

export interface ClusterToken {
  readonly cluster: string;
  readonly token: string;
}

export interface Env {
  readonly port: number;
  readonly emulatorHost: string | undefined;
  readonly projectId: string | undefined;
  /** Empty means unauthenticated local development against the emulator (cluster `default`). */
  readonly tokens: readonly ClusterToken[];
}

export class EnvError extends Error {
  override readonly name = 'EnvError';
}

const PortSchema = z
  .string()
  .regex(/^\d+$/, 'must be a port number')
  .transform(Number)
  .refine((p) => p >= 1 && p <= 65535, 'must be between 1 and 65535')
  .optional();

const EnvSchema = z.object({
  PORT: PortSchema,
  FIRESTORE_EMULATOR_HOST: z
    .string()
    .regex(/^[^\s/]+:\d+$/, 'must be HOST:PORT, e.g. 127.0.0.1:8080')
    .optional(),
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  MACPOOL_TOKENS: z.string().optional(),
});

/**
 * Parses `MACPOOL_TOKENS="clusterA=token1,clusterB=token2"`: each cluster's secret, from which its role credentials
 * are derived (shared/credentials.ts). A cluster may have several secrets (rotation).
 */
export function parseTokens(text: string): ClusterToken[] {
  const entries = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const tokens: ClusterToken[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of entries.entries()) {
    const eq = entry.indexOf('=');
    const cluster = eq < 0 ? '' : entry.slice(0, eq);
    const token = eq < 0 ? '' : entry.slice(eq + 1);
    const where = `MACPOOL_TOKENS entry ${i + 1}`;
    if (eq < 0) throw new EnvError(`${where} has no "=": each entry must be CLUSTER=TOKEN`);
    if (!CLUSTER_NAME.test(cluster)) {
      throw new EnvError(
        `${where}: cluster name ${JSON.stringify(cluster)} is not allowed: use a DNS label ` +
          '(lower-case letters, digits and "-", at most 63 characters)',
      );
    }
    // The token itself is never echoed: error messages end up in logs.
    if (!TOKEN.test(token)) {
      throw new EnvError(
        `${where} (cluster ${cluster}): the token is not allowed: use 16 to 256 characters from ` +
          'A-Z a-z 0-9 . _ ~ - (for example `openssl rand -hex 32`)',
      );
    }
    if (seen.has(token)) throw new EnvError(`${where} (cluster ${cluster}): the same token appears twice`);
    seen.add(token);
    tokens.push({ cluster, token });
  }
  if (tokens.length === 0) throw new EnvError('MACPOOL_TOKENS is set but lists no CLUSTER=TOKEN entry');
  // A role credential copied from a webhook URL into the list would become a secret that holds every role.
  const derived = new Map(
    tokens.flatMap((t) => ROLES.map((role) => [roleCredential(t.token, role), { role, cluster: t.cluster }] as const)),
  );
  for (const [i, t] of tokens.entries()) {
    const from = derived.get(t.token);
    if (from !== undefined) {
      throw new EnvError(
        `MACPOOL_TOKENS entry ${i + 1} (cluster ${t.cluster}) is the ${from.role} credential derived from a token ` +
          `of cluster ${from.cluster}, not a secret: list each cluster's secret only`,
      );
    }
  }
  return tokens;
}

function envError(error: z.ZodError, variable?: string): EnvError {
  const issue = error.issues[0]!;
  return new EnvError(`environment variable ${variable ?? String(issue.path[0])} ${issue.message}`);
}

/** PORT alone (default 8080), for `npm start`, which checks that the port is free before anything else. */
export function parsePort(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = PortSchema.safeParse(env.PORT || undefined);
  if (!parsed.success) throw envError(parsed.error, 'PORT');
  return parsed.data ?? DEFAULT_PORT;
}

/** The Firestore project: GOOGLE_CLOUD_PROJECT, else the development project when talking to the emulator. */
export function firestoreProject(env: Pick<Env, 'emulatorHost' | 'projectId'>): string | undefined {
  return env.projectId ?? (env.emulatorHost === undefined ? undefined : DEV_PROJECT);
}

/**
 * Parses the function's environment once, at start. Refuses to start without tokens unless it talks to the
 * Firestore emulator: an open admission endpoint on the internet would let anyone claim and free MACs.
 */
export function parseEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const parsed = EnvSchema.safeParse({
    PORT: env.PORT || undefined,
    FIRESTORE_EMULATOR_HOST: env.FIRESTORE_EMULATOR_HOST || undefined,
    GOOGLE_CLOUD_PROJECT: env.GOOGLE_CLOUD_PROJECT || undefined,
    MACPOOL_TOKENS: env.MACPOOL_TOKENS?.trim() || undefined,
  });
  if (!parsed.success) throw envError(parsed.error);
  const e = parsed.data;
  const tokens = e.MACPOOL_TOKENS === undefined ? [] : parseTokens(e.MACPOOL_TOKENS);
  if (tokens.length === 0 && e.FIRESTORE_EMULATOR_HOST === undefined) {
    throw new EnvError(
      'MACPOOL_TOKENS is not set: refusing to serve unauthenticated admission requests against a real ' +
        'Firestore. Set MACPOOL_TOKENS="cluster=token,..." (tokens of 16+ characters from A-Z a-z 0-9 . _ ~ -), ' +
        'or set FIRESTORE_EMULATOR_HOST for local development.',
    );
  }
  return {
    port: e.PORT ?? DEFAULT_PORT,
    emulatorHost: e.FIRESTORE_EMULATOR_HOST,
    projectId: e.GOOGLE_CLOUD_PROJECT,
    tokens,
  };
}
