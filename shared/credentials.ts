/**
 * Role-scoped credentials (SPEC S4). Each cluster has one secret; every role the function serves has its own
 * credential derived from it, so a webhook URL, which is not secret in practice (the API server prints it in
 * errors and logs), carries only the power of its own role.
 *
 * A role credential is `hex(sha256("macpool:v1:<role>:<secret>"))`: 64 lower-case hex digits, which fit a URL path
 * and the token pattern. Terraform computes the same value with its `sha256()` function (it has no HMAC), and a
 * shell with `printf 'macpool:v1:reconcile:%s' "$SECRET" | sha256sum`.
 *
 * Why plain SHA-256 is enough here: the messages are a closed set of role names and the function accepts only the
 * exact credentials it derives itself. SHA-256's length extension lets the holder of one digest compute the digest
 * of (that message + padding + anything); with the secret last, that message is still `macpool:v1:<role>:<secret>`
 * followed by SHA-256 padding bytes, which is no role's message, so no extension of a credential is ever accepted.
 * What a role credential does let its holder do is test guesses of the secret offline: a generated secret (48
 * random characters from Terraform, or `openssl rand -hex 32`) makes that hopeless; a short chosen one does not.
 */
import { createHash } from 'node:crypto';

/**
 * Every role a credential can be scoped to. The names are part of the derivation: renaming one changes its
 * credential in every cluster.
 * - `vm`: VM CREATE and UPDATE admissions (the fail-closed VM webhook);
 * - `release`: DELETE admissions of VMs and pods (their own fail-open webhook);
 * - `pod`: pod admissions (SPEC M1-M6);
 * - `namespace-sync`, `hyperconverged-sync`: the validating webhooks that mirror namespaces and the range;
 * - `reconcile`: the inventory sync (`/reconcile`), sent as a header by the CronJob.
 */
export const ROLES = ['vm', 'release', 'pod', 'namespace-sync', 'hyperconverged-sync', 'reconcile'] as const;
export type Role = (typeof ROLES)[number];

/** Where a credential was presented: the `/t/<credential>/` path prefix, or `Authorization: Bearer`. */
export const CREDENTIAL_SOURCES = ['path', 'bearer'] as const;
export type CredentialSource = (typeof CREDENTIAL_SOURCES)[number];

/** Versioned context of the derivation; a new scheme gets a new context, never a silent change. */
export const CREDENTIAL_CONTEXT = 'macpool:v1';

/** The credential of `role` for the cluster whose secret is `secret` (the same value Terraform computes). */
export function roleCredential(secret: string, role: Role): string {
  return createHash('sha256').update(`${CREDENTIAL_CONTEXT}:${role}:${secret}`, 'utf8').digest('hex');
}
