/**
 * Webhook paths as the cluster calls them: taken from the URLs webhookConfigurations() generates for a secret (the
 * same generator `macpool webhook-config` and, through the equality test, Terraform use), so the tests send what an
 * API server would send.
 */
import { roleCredential } from '../../shared/credentials.js';
import { WEBHOOK_NAMES, webhookConfigurations } from '../../shared/webhooks.js';

const BASE = 'https://macpool.test';

export type WebhookKey = keyof typeof WEBHOOK_NAMES;

/** The path (with its `/t/<credential>` prefix) of every webhook of the cluster whose secret is `secret`. */
export function webhookPaths(secret: string): Record<WebhookKey, string> {
  const { mutating, validating } = webhookConfigurations({ url: BASE, token: secret });
  const byName = new Map([...mutating.webhooks, ...validating.webhooks].map((w) => [w.name, w.clientConfig.url]));
  const entries = Object.entries(WEBHOOK_NAMES).map(([key, name]) => {
    const url = byName.get(name);
    if (url === undefined) throw new Error(`webhookConfigurations() has no webhook ${name}`);
    return [key, url.slice(BASE.length)];
  });
  return Object.fromEntries(entries) as Record<WebhookKey, string>;
}

/** The header the reconcile CronJob sends: the cluster's reconcile credential, never the secret. */
export function reconcileHeaders(secret: string): Record<string, string> {
  return { authorization: `Bearer ${roleCredential(secret, 'reconcile')}` };
}
