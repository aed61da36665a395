import { describe, it, expect } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type Role, roleCredential } from '../../shared/credentials.js';
import {
  type MutatingWebhook,
  OPT_MODES,
  WEBHOOK_NAMES,
  webhookConfigurations,
  webhookConfigurationsYaml,
  type OptMode,
  type WebhookOptions,
} from '../../shared/webhooks.js';

const url = 'https://macpool-abc123-uc.a.run.app';
const token = '0123456789abcdef0123456789abcdef';
const runLevels = [
  { key: 'runlevel', operator: 'NotIn', values: ['0', '1'] },
  { key: 'openshift.io/run-level', operator: 'NotIn', values: ['0', '1'] },
];

function allWebhooks(o: WebhookOptions) {
  const { mutating, validating } = webhookConfigurations(o);
  return [...mutating.webhooks, ...validating.webhooks];
}

function webhook(o: WebhookOptions, name: string) {
  const found = allWebhooks(o).find((w) => w.name === name);
  if (found === undefined) throw new Error(`no webhook ${name}`);
  return found;
}

const OPT_MODE_CASES = [
  {
    podOptMode: 'opt-out' as const,
    term: { key: 'mutatepods.kubemacpool.io', operator: 'NotIn', values: ['ignore'] },
  },
  { podOptMode: 'opt-in' as const, term: { key: 'mutatepods.kubemacpool.io', operator: 'In', values: ['allocate'] } },
];

describe('webhookConfigurations', () => {
  it('names the configurations and labels them', () => {
    const { mutating, validating } = webhookConfigurations({ url, token });
    expect(mutating.metadata).toEqual({ name: 'macpool-mutator', labels: { 'app.kubernetes.io/name': 'macpool' } });
    expect(validating.metadata).toEqual({ name: 'macpool-validator', labels: { 'app.kubernetes.io/name': 'macpool' } });
    expect(mutating.webhooks.map((w) => w.name)).toEqual([
      'mutatevirtualmachines.kubemacpool.io',
      'releasevirtualmachines.kubemacpool.io',
      'mutatepods.kubemacpool.io',
      'releasepods.kubemacpool.io',
    ]);
    expect(validating.webhooks.map((w) => w.name)).toEqual([
      'syncnamespaces.kubemacpool.io',
      'validatehyperconverged.kubemacpool.io',
    ]);
  });

  it.each([
    { name: 'bare host', base: url, root: url },
    { name: 'trailing slash', base: `${url}/`, root: url },
    { name: 'path prefix', base: `${url}/macpool`, root: `${url}/macpool` },
  ])("S4: each webhook URL carries its own role's credential, never the secret: $name", ({ base, root }) => {
    const urls = Object.fromEntries(allWebhooks({ url: base, token }).map((w) => [w.name, w.clientConfig.url]));
    const at = (role: Role, path: string) => `${root}/t/${roleCredential(token, role)}${path}`;
    expect(urls).toEqual({
      [WEBHOOK_NAMES.mutateVirtualMachines]: at('vm', '/mutate-virtualmachines'),
      [WEBHOOK_NAMES.releaseVirtualMachines]: at('release', '/mutate-virtualmachines'),
      [WEBHOOK_NAMES.mutatePods]: at('pod', '/mutate-pods'),
      [WEBHOOK_NAMES.releasePods]: at('release', '/mutate-pods'),
      [WEBHOOK_NAMES.syncNamespaces]: at('namespace-sync', '/validate-namespaces'),
      [WEBHOOK_NAMES.validateHyperConverged]: at('hyperconverged-sync', '/validate-hyperconverged'),
    });
    expect(webhookConfigurationsYaml({ url: base, token })).not.toContain(token);
    expect(new Set(Object.values(urls)).size).toBe(6);
  });

  it.each([
    { name: WEBHOOK_NAMES.mutateVirtualMachines, policy: 'Fail' },
    { name: WEBHOOK_NAMES.releaseVirtualMachines, policy: 'Ignore' },
    { name: WEBHOOK_NAMES.mutatePods, policy: 'Fail' },
    { name: WEBHOOK_NAMES.releasePods, policy: 'Ignore' },
    { name: WEBHOOK_NAMES.syncNamespaces, policy: 'Ignore' },
    { name: WEBHOOK_NAMES.validateHyperConverged, policy: 'Ignore' },
  ])('failurePolicy of $name is $policy', ({ name, policy }) => {
    expect(webhook({ url, token }, name).failurePolicy).toBe(policy);
  });

  it.each([
    {
      name: WEBHOOK_NAMES.mutateVirtualMachines,
      rule: {
        apiGroups: ['kubevirt.io'],
        apiVersions: ['v1'],
        operations: ['CREATE', 'UPDATE'],
        resources: ['virtualmachines'],
        scope: 'Namespaced',
      },
    },
    {
      name: WEBHOOK_NAMES.releaseVirtualMachines,
      rule: {
        apiGroups: ['kubevirt.io'],
        apiVersions: ['v1'],
        operations: ['DELETE'],
        resources: ['virtualmachines'],
        scope: 'Namespaced',
      },
    },
    {
      name: WEBHOOK_NAMES.mutatePods,
      rule: { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' },
    },
    {
      name: WEBHOOK_NAMES.releasePods,
      rule: { apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['pods'], scope: 'Namespaced' },
    },
    {
      name: WEBHOOK_NAMES.syncNamespaces,
      rule: {
        apiGroups: [''],
        apiVersions: ['v1'],
        operations: ['CREATE', 'UPDATE', 'DELETE'],
        resources: ['namespaces'],
        scope: 'Cluster',
      },
    },
    {
      name: WEBHOOK_NAMES.validateHyperConverged,
      rule: {
        apiGroups: ['hco.kubevirt.io'],
        apiVersions: ['v1beta1'],
        operations: ['CREATE', 'UPDATE'],
        resources: ['hyperconvergeds'],
        scope: 'Namespaced',
      },
    },
  ])('rules of $name', ({ name, rule }) => {
    expect(webhook({ url, token }, name).rules).toEqual([rule]);
  });

  it('gives every webhook the same review versions, match policy, side effects and no caBundle', () => {
    for (const w of allWebhooks({ url, token })) {
      expect(w).toMatchObject({
        admissionReviewVersions: ['v1', 'v1beta1'],
        matchPolicy: 'Equivalent',
        sideEffects: 'NoneOnDryRun',
        timeoutSeconds: 10,
      });
      expect(Object.keys(w.clientConfig)).toEqual(['url']);
    }
    for (const w of webhookConfigurations({ url, token }).mutating.webhooks) expect(w.reinvocationPolicy).toBe('Never');
  });

  it.each([
    {
      name: 'opt-out (default)',
      optMode: undefined,
      term: { key: 'mutatevirtualmachines.kubemacpool.io', operator: 'NotIn', values: ['ignore'] },
    },
    {
      name: 'opt-out',
      optMode: 'opt-out' as const,
      term: { key: 'mutatevirtualmachines.kubemacpool.io', operator: 'NotIn', values: ['ignore'] },
    },
    {
      name: 'opt-in',
      optMode: 'opt-in' as const,
      term: { key: 'mutatevirtualmachines.kubemacpool.io', operator: 'In', values: ['allocate'] },
    },
  ])('namespace selectors in $name mode', ({ optMode, term }) => {
    const o: WebhookOptions = optMode === undefined ? { url, token } : { url, token, optMode };
    const selectors = Object.fromEntries(allWebhooks(o).map((w) => [w.name, w.namespaceSelector.matchExpressions]));
    // M4: the pod webhooks have their own label and mode, opt-in unless told otherwise.
    const podTerm = { key: 'mutatepods.kubemacpool.io', operator: 'In', values: ['allocate'] };
    expect(selectors).toEqual({
      [WEBHOOK_NAMES.mutateVirtualMachines]: [...runLevels, term],
      [WEBHOOK_NAMES.releaseVirtualMachines]: [...runLevels, term],
      [WEBHOOK_NAMES.mutatePods]: [...runLevels, podTerm],
      [WEBHOOK_NAMES.releasePods]: [...runLevels, podTerm],
      // Namespace sync must see opt label changes: no opt term.
      [WEBHOOK_NAMES.syncNamespaces]: runLevels,
      [WEBHOOK_NAMES.validateHyperConverged]: runLevels,
    });
  });

  it.each(OPT_MODE_CASES)(
    'pod webhooks in $podOptMode mode: their own opt term, virt-launcher pods never sent',
    ({ podOptMode, term }) => {
      for (const name of [WEBHOOK_NAMES.mutatePods, WEBHOOK_NAMES.releasePods]) {
        const w = webhook({ url, token, optMode: 'opt-out', podOptMode }, name) as MutatingWebhook;
        expect(w.namespaceSelector.matchExpressions).toEqual([...runLevels, term]);
        expect(w.objectSelector).toEqual({
          matchExpressions: [{ key: 'kubevirt.io', operator: 'NotIn', values: ['virt-launcher'] }],
        });
      }
    },
  );

  it.each([
    { name: 'minimum', timeoutSeconds: 1 },
    { name: 'maximum', timeoutSeconds: 30 },
  ])('accepts timeoutSeconds at the $name', ({ timeoutSeconds }) => {
    for (const w of allWebhooks({ url, token, timeoutSeconds })) expect(w.timeoutSeconds).toBe(timeoutSeconds);
  });

  it('returns fresh objects: mutating one result does not change the next', () => {
    const first = webhookConfigurations({ url, token });
    first.mutating.webhooks[0]?.admissionReviewVersions.push('v2');
    first.mutating.webhooks[0]?.namespaceSelector.matchExpressions[0]?.values.push('2');
    expect(webhookConfigurations({ url, token })).not.toEqual(first);
    expect(webhookConfigurations({ url, token }).mutating.webhooks[1]?.admissionReviewVersions).toEqual([
      'v1',
      'v1beta1',
    ]);
  });

  it.each([
    { name: 'http', o: { url: 'http://macpool.example.com', token }, message: /scheme must be https/ },
    { name: 'no scheme', o: { url: 'macpool.example.com', token }, message: /scheme must be https/ },
    { name: 'query', o: { url: `${url}/?x=1`, token }, message: /query string/ },
    { name: 'empty query', o: { url: `${url}?`, token }, message: /query string/ },
    { name: 'fragment', o: { url: `${url}#x`, token }, message: /fragment/ },
    { name: 'userinfo', o: { url: 'https://user:pw@macpool.example.com', token }, message: /user info/ },
    { name: 'no host', o: { url: 'https:///path', token }, message: /no host/ },
    { name: 'whitespace', o: { url: `${url}/a b`, token }, message: /whitespace/ },
    { name: 'token too short', o: { url, token: 'short' }, message: /16 to 256 characters/ },
    { name: 'token too long', o: { url, token: 'a'.repeat(257) }, message: /16 to 256 characters/ },
    { name: 'token with slash', o: { url, token: 'abcdefgh/ijklmnopq' }, message: /A-Z a-z 0-9 \. _ ~ -/ },
    { name: 'token with equals', o: { url, token: 'abcdefgh=ijklmnopq' }, message: /invalid cluster token/ },
    { name: 'timeout 0', o: { url, token, timeoutSeconds: 0 }, message: /whole number from 1 to 30/ },
    { name: 'timeout 31', o: { url, token, timeoutSeconds: 31 }, message: /whole number from 1 to 30/ },
    { name: 'timeout 2.5', o: { url, token, timeoutSeconds: 2.5 }, message: /whole number from 1 to 30/ },
    {
      name: 'opt mode',
      o: { url, token, optMode: 'opt-maybe' as OptMode },
      message: /expected one of opt-out, opt-in/,
    },
  ])('refuses $name', ({ o, message }) => {
    expect(() => webhookConfigurations(o)).toThrow(message);
  });

  it.each([
    { name: 'bad token', o: { url, token: 'secret-token-value/with-slash' } },
    { name: 'URL with user info', o: { url: 'https://user:secret-token-value@macpool.example.com', token } },
    { name: 'URL pasted from a webhook', o: { url: `${url}/t/secret-token-value?x`, token } },
  ])('never echoes secrets in errors: $name', ({ o }) => {
    let message = '';
    try {
      webhookConfigurations(o);
    } catch (e) {
      message = e instanceof Error ? e.message : String(e);
    }
    expect(message).toMatch(/^invalid/);
    expect(message).not.toContain('secret-token-value');
  });
});

describe('webhookConfigurationsYaml', () => {
  it.each(OPT_MODES.map((optMode) => ({ name: optMode, optMode })))('round-trips in $name mode', ({ optMode }) => {
    const o = { url, token, optMode, timeoutSeconds: 7 };
    const text = webhookConfigurationsYaml(o);
    const parsed = parseAllDocuments(text).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS();
    });
    const { mutating, validating } = webhookConfigurations(o);
    expect(parsed).toEqual([mutating, validating]);
  });

  it('quotes run levels so they stay strings', () => {
    const text = webhookConfigurationsYaml({ url, token });
    expect(text).toMatch(/- "0"\n\s+- "1"/);
    expect(text.split(/^---$/m)).toHaveLength(2);
  });
});
