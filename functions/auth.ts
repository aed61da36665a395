import { createHash, timingSafeEqual } from 'node:crypto';
import type { ClusterToken } from '../shared/env.js';

const TOKEN_PREFIX = /^\/t\/([^/]*)(\/.*)?$/;

/** Splits `/t/<token>/path` into the token and the path; other paths come back unchanged. */
export function splitTokenPath(path: string): { token: string | undefined; path: string } {
  const m = TOKEN_PREFIX.exec(path);
  return m ? { token: decodeURIComponent(m[1]!), path: m[2] ?? '/' } : { token: undefined, path };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * The cluster a token names, or undefined. Compares fixed-length digests with timingSafeEqual against every
 * configured token, without stopping at a match, so timing reveals neither the token nor its position (S1).
 */
export function clusterForToken(tokens: readonly ClusterToken[], presented: string | undefined): string | undefined {
  const given = digest(presented ?? '');
  let cluster: string | undefined;
  for (const t of tokens) {
    const match = timingSafeEqual(given, digest(t.token));
    if (match && presented !== undefined) cluster = t.cluster;
  }
  return cluster;
}
