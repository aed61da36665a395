import { createHash, timingSafeEqual } from 'node:crypto';
import { type CredentialSource, type Role, ROLES, roleCredential } from '../shared/credentials.js';
import { type ClusterToken, DEFAULT_CLUSTER } from '../shared/env.js';

const TOKEN_PREFIX = /^\/t\/([^/]*)(\/.*)?$/;

/**
 * Splits `/t/<token>/path` into the token and the path; other paths come back unchanged. A token that is not valid
 * percent-encoding comes back empty (it matches no credential), so this never throws.
 */
export function splitTokenPath(path: string): { token: string | undefined; path: string } {
  const m = TOKEN_PREFIX.exec(path);
  if (!m) return { token: undefined, path };
  let token = '';
  try {
    token = decodeURIComponent(m[1]!);
  } catch {
    // left empty: refused as an unknown credential
  }
  return { token, path: m[2] ?? '/' };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** A credential as a request carried it. */
export interface Presented {
  readonly value: string;
  readonly source: CredentialSource;
}

/**
 * The credential a request presents: the path prefix when there is one (even with a header beside it: a wrong
 * path credential is not rescued by a right header), else the Bearer header.
 */
export function presentedCredential(
  pathToken: string | undefined,
  authorization: string | undefined,
): Presented | undefined {
  if (pathToken !== undefined) return { value: pathToken, source: 'path' };
  const bearer = bearerToken(authorization);
  return bearer === undefined ? undefined : { value: bearer, source: 'bearer' };
}

/** What a known credential is: a cluster's secret (every role, header only) or one role's credential. */
export interface Identity {
  readonly cluster: string;
  readonly role: Role | 'secret';
}

/** What a route asks of a credential: its role, and where that role's credential may come from. */
export interface Requirement {
  readonly role: Role;
  readonly from: readonly CredentialSource[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * The credentials of every configured cluster: each secret and the role credentials derived from it (for rotation,
 * every listed secret of a cluster derives its own). Built once at start; a check hashes only what was presented.
 */
export class Credentials {
  private readonly known: readonly { readonly digest: Buffer; readonly identity: Identity }[];

  constructor(tokens: readonly ClusterToken[]) {
    this.known = tokens.flatMap((t) => [
      { digest: digest(t.token), identity: { cluster: t.cluster, role: 'secret' as const } },
      ...ROLES.map((role) => ({
        digest: digest(roleCredential(t.token, role)),
        identity: { cluster: t.cluster, role },
      })),
    ]);
  }

  /** No tokens configured: unauthenticated development against the emulator (parseEnv refuses it otherwise). */
  get open(): boolean {
    return this.known.length === 0;
  }

  /**
   * What `presented` is, or undefined. Compares fixed-length digests with timingSafeEqual against every known
   * credential, without stopping at a match, so timing reveals neither the credential nor its position (S1).
   */
  identify(presented: string | undefined): Identity | undefined {
    const given = digest(presented ?? '');
    let found: Identity | undefined;
    for (const k of this.known) {
      const match = timingSafeEqual(given, k.digest);
      if (match && presented !== undefined) found = k.identity;
    }
    return found;
  }

  /**
   * The cluster on whose behalf `presented` meets `need`, or undefined. A cluster's secret meets every role, but
   * only as a Bearer header: in a URL path it is refused like a wrong one (S4).
   */
  authorize(
    identity: Identity | undefined,
    source: CredentialSource | undefined,
    need: Requirement,
  ): string | undefined {
    if (this.open) return DEFAULT_CLUSTER;
    if (identity === undefined || source === undefined) return undefined;
    if (identity.role === 'secret') return source === 'bearer' ? identity.cluster : undefined;
    return identity.role === need.role && need.from.includes(source) ? identity.cluster : undefined;
  }
}
