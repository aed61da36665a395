/**
 * The cluster side of macpool: the MutatingWebhookConfiguration and ValidatingWebhookConfiguration that point a
 * Kubernetes API server at the function. This is the single source of truth; the Terraform cluster module
 * (`terraform/modules/cluster/webhooks.tf`) renders the same objects and a unit test holds the two equal.
 */
import { stringify } from 'yaml';
import { type Role, roleCredential } from './credentials.js';
import { NAMESPACE_OPT_LABEL as OPT_LABEL, OPT_IN_VALUE, OPT_OUT_VALUE, POD_OPT_LABEL } from './kubevirt.js';

/** How namespaces are selected for MAC allocation (SPEC V9). */
export const OPT_MODES = ['opt-out', 'opt-in'] as const;
export type OptMode = (typeof OPT_MODES)[number];

/** Namespace label that opts a namespace out of (value `ignore`) or into (value `allocate`) MAC allocation. */
export { OPT_LABEL, OPT_IN_VALUE, OPT_OUT_VALUE };
/** Run-level labels of cluster-critical namespaces (KMP excludes run levels 0 and 1 from its webhooks). */
export const RUN_LEVEL_LABELS = ['runlevel', 'openshift.io/run-level'] as const;
export const EXCLUDED_RUN_LEVELS = ['0', '1'] as const;
export const NAME_LABEL = 'app.kubernetes.io/name';
export const APP_NAME = 'macpool';

export const MUTATING_CONFIGURATION_NAME = 'macpool-mutator';
export const VALIDATING_CONFIGURATION_NAME = 'macpool-validator';
/** Webhook names are KMP's, so dashboards and runbooks written for KMP keep working. */
export const WEBHOOK_NAMES = {
  mutateVirtualMachines: 'mutatevirtualmachines.kubemacpool.io',
  releaseVirtualMachines: 'releasevirtualmachines.kubemacpool.io',
  mutatePods: 'mutatepods.kubemacpool.io',
  releasePods: 'releasepods.kubemacpool.io',
  syncNamespaces: 'syncnamespaces.kubemacpool.io',
  validateHyperConverged: 'validatehyperconverged.kubemacpool.io',
} as const;
export const WEBHOOK_PATHS = {
  mutateVirtualMachines: '/mutate-virtualmachines',
  mutatePods: '/mutate-pods',
  validateNamespaces: '/validate-namespaces',
  validateHyperConverged: '/validate-hyperconverged',
  reconcile: '/reconcile',
} as const;

/** A cluster secret (SPEC S1); webhook URLs carry credentials derived from it, never the secret itself (S4). */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~-]{16,256}$/;
/** An https base URL without query, fragment or userinfo; the Terraform cluster module validates with the same regex. */
export const FUNCTION_URL_PATTERN = /^https:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/;
export const DEFAULT_TIMEOUT_SECONDS = 10;
/** The API server caps webhook timeouts at 30 s. */
export const MAX_TIMEOUT_SECONDS = 30;

export interface WebhookOptions {
  /** The function's base https URL, e.g. `https://macpool-abc123-uc.a.run.app`; one trailing slash is tolerated. */
  url: string;
  /** The cluster's secret token; each webhook URL carries the credential of its own role, derived from it. */
  token: string;
  /** Default `opt-out`. */
  optMode?: OptMode;
  /** The pod webhooks' opt mode, with the label `mutatepods.kubemacpool.io`; default `opt-in` (as KMP ships it). */
  podOptMode?: OptMode;
  /** Default 10, allowed 1..30. */
  timeoutSeconds?: number;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn';
  values: string[];
}

export interface RuleWithOperations {
  apiGroups: string[];
  apiVersions: string[];
  operations: ('CREATE' | 'UPDATE' | 'DELETE')[];
  resources: string[];
  scope: 'Namespaced' | 'Cluster';
}

export interface ValidatingWebhook {
  name: string;
  admissionReviewVersions: string[];
  clientConfig: { url: string };
  failurePolicy: 'Fail' | 'Ignore';
  matchPolicy: 'Equivalent';
  namespaceSelector: { matchExpressions: LabelSelectorRequirement[] };
  rules: RuleWithOperations[];
  sideEffects: 'NoneOnDryRun';
  timeoutSeconds: number;
}

type CommonFields = Pick<
  ValidatingWebhook,
  'admissionReviewVersions' | 'matchPolicy' | 'sideEffects' | 'timeoutSeconds'
>;

export interface MutatingWebhook extends ValidatingWebhook {
  reinvocationPolicy: 'Never';
  objectSelector?: { matchExpressions: LabelSelectorRequirement[] };
}

/** KubeVirt's virt-launcher pods carry this label; their MACs are their VM's, so the pod webhooks never see them. */
export const VIRT_LAUNCHER_EXCLUSION: LabelSelectorRequirement = {
  key: 'kubevirt.io',
  operator: 'NotIn',
  values: ['virt-launcher'],
};

interface ObjectMeta {
  name: string;
  labels: Record<string, string>;
}

export interface MutatingWebhookConfiguration {
  apiVersion: 'admissionregistration.k8s.io/v1';
  kind: 'MutatingWebhookConfiguration';
  metadata: ObjectMeta;
  webhooks: MutatingWebhook[];
}

export interface ValidatingWebhookConfiguration {
  apiVersion: 'admissionregistration.k8s.io/v1';
  kind: 'ValidatingWebhookConfiguration';
  metadata: ObjectMeta;
  webhooks: ValidatingWebhook[];
}

/** The run-level exclusions every macpool webhook carries, so cluster-critical namespaces never depend on it. */
export function runLevelExclusions(): LabelSelectorRequirement[] {
  return RUN_LEVEL_LABELS.map((key) => ({ key, operator: 'NotIn', values: [...EXCLUDED_RUN_LEVELS] }));
}

/** The namespace selector term for an opt mode (SPEC V9), of the VM label or (M4) the pod label. */
export function optExpression(mode: OptMode, label: string = OPT_LABEL): LabelSelectorRequirement {
  switch (mode) {
    case 'opt-out':
      return { key: label, operator: 'NotIn', values: [OPT_OUT_VALUE] };
    case 'opt-in':
      return { key: label, operator: 'In', values: [OPT_IN_VALUE] };
    default:
      return mode satisfies never;
  }
}

/** Validates the base URL and returns it without its trailing slash; throws on anything else. */
function baseUrl(url: string): string {
  const problem = urlProblem(url);
  if (problem !== undefined) {
    // The URL is not echoed: it may carry user info or, pasted from a webhook, a token.
    throw new Error(
      `invalid function URL: ${problem}; expected an https URL such as https://macpool-abc123-uc.a.run.app`,
    );
  }
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function urlProblem(url: string): string | undefined {
  if (!url.startsWith('https://')) return 'the scheme must be https';
  if (/\s/.test(url)) return 'it must not contain whitespace';
  if (url.includes('?')) return 'it must not have a query string (Kubernetes forbids them in webhook URLs)';
  if (url.includes('#')) return 'it must not have a fragment';
  const authority = url.slice('https://'.length).split('/')[0] ?? '';
  if (authority.includes('@')) return 'it must not contain user info';
  if (authority === '') return 'it has no host';
  if (!URL.canParse(url) || !FUNCTION_URL_PATTERN.test(url)) return 'it is not a valid URL';
  return undefined;
}

function checkToken(token: string): void {
  // The value is a secret: the message describes the rule, never the token.
  if (!TOKEN_PATTERN.test(token)) {
    throw new Error(
      `invalid cluster token (length ${token.length}): expected 16 to 256 characters from A-Z a-z 0-9 . _ ~ - ` +
        '(for example the output of "openssl rand -hex 32")',
    );
  }
}

function checkTimeout(seconds: number): void {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new Error(`invalid timeoutSeconds ${seconds}: expected a whole number from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
}

function checkOptMode(mode: string): asserts mode is OptMode {
  if (!(OPT_MODES as readonly string[]).includes(mode)) {
    throw new Error(`invalid optMode ${JSON.stringify(mode)}: expected one of ${OPT_MODES.join(', ')}`);
  }
}

/**
 * The webhook configurations for one cluster. Throws an Error naming the problem and what is allowed when the URL,
 * token, opt mode or timeout is invalid.
 */
export function webhookConfigurations(o: WebhookOptions): {
  mutating: MutatingWebhookConfiguration;
  validating: ValidatingWebhookConfiguration;
} {
  const optMode = o.optMode ?? 'opt-out';
  const podOptMode = o.podOptMode ?? 'opt-in';
  const timeoutSeconds = o.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  checkOptMode(optMode);
  checkOptMode(podOptMode);
  checkTimeout(timeoutSeconds);
  checkToken(o.token);
  const base = baseUrl(o.url);
  const url = (role: Role, path: string) => `${base}/t/${roleCredential(o.token, role)}${path}`;
  const metadata = (name: string): ObjectMeta => ({ name, labels: { [NAME_LABEL]: APP_NAME } });
  // A function, not a shared object: every webhook gets its own arrays.
  const common = (): CommonFields => ({
    admissionReviewVersions: ['v1', 'v1beta1'],
    matchPolicy: 'Equivalent',
    sideEffects: 'NoneOnDryRun',
    timeoutSeconds,
  });
  const rule = (group: string, resource: string, operations: RuleWithOperations['operations']): RuleWithOperations => ({
    apiGroups: [group],
    apiVersions: ['v1'],
    operations,
    resources: [resource],
    scope: 'Namespaced',
  });
  /** A mutating webhook for one kind: its path, opt term and (pods) object selector; its own role's credential. */
  const mutating = (
    kind: 'vm' | 'pod',
    name: string,
    role: Role,
    operations: RuleWithOperations['operations'],
    failurePolicy: 'Fail' | 'Ignore',
  ): MutatingWebhook => ({
    name,
    ...common(),
    clientConfig: { url: url(role, kind === 'vm' ? WEBHOOK_PATHS.mutateVirtualMachines : WEBHOOK_PATHS.mutatePods) },
    failurePolicy,
    namespaceSelector: {
      matchExpressions: [
        ...runLevelExclusions(),
        kind === 'vm' ? optExpression(optMode) : optExpression(podOptMode, POD_OPT_LABEL),
      ],
    },
    ...(kind === 'pod'
      ? {
          objectSelector: {
            matchExpressions: [{ ...VIRT_LAUNCHER_EXCLUSION, values: [...VIRT_LAUNCHER_EXCLUSION.values] }],
          },
        }
      : {}),
    reinvocationPolicy: 'Never',
    rules: [kind === 'vm' ? rule('kubevirt.io', 'virtualmachines', operations) : rule('', 'pods', operations)],
  });
  return {
    mutating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: metadata(MUTATING_CONFIGURATION_NAME),
      webhooks: [
        // A VM must never be stored without the MAC it needs (SPEC F1). Its URL shows in the errors users see
        // when the call fails, so its credential admits CREATE and UPDATE only (S4).
        mutating('vm', WEBHOOK_NAMES.mutateVirtualMachines, 'vm', ['CREATE', 'UPDATE'], 'Fail'),
        // Fail-open: a VM can always be deleted, even with the function unreachable; reconcile frees what is missed.
        // Its own credential: the only webhook one that releases claims.
        mutating('vm', WEBHOOK_NAMES.releaseVirtualMachines, 'release', ['DELETE'], 'Ignore'),
        // M1: a pod on a Multus network must not start without its MACs, as KMP's pod webhook; opt-in by default,
        // so only namespaces labelled mutatepods.kubemacpool.io=allocate depend on the function.
        mutating('pod', WEBHOOK_NAMES.mutatePods, 'pod', ['CREATE'], 'Fail'),
        // M5: fail-open like the VM release; the same release credential.
        mutating('pod', WEBHOOK_NAMES.releasePods, 'release', ['DELETE'], 'Ignore'),
      ],
    },
    validating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: metadata(VALIDATING_CONFIGURATION_NAME),
      webhooks: [
        {
          name: WEBHOOK_NAMES.syncNamespaces,
          ...common(),
          clientConfig: { url: url('namespace-sync', WEBHOOK_PATHS.validateNamespaces) },
          // Fail-open: namespace changes never wait on the function; reconcile resends every namespace's labels.
          failurePolicy: 'Ignore',
          // No opt term: the function must see a namespace's opt label change in both directions.
          namespaceSelector: { matchExpressions: runLevelExclusions() },
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE', 'DELETE'],
              resources: ['namespaces'],
              scope: 'Cluster',
            },
          ],
        },
        {
          name: WEBHOOK_NAMES.validateHyperConverged,
          ...common(),
          clientConfig: { url: url('hyperconverged-sync', WEBHOOK_PATHS.validateHyperConverged) },
          // Fail-open: HyperConverged edits stay possible with the function down; they are then not synced.
          failurePolicy: 'Ignore',
          namespaceSelector: { matchExpressions: runLevelExclusions() },
          rules: [
            {
              apiGroups: ['hco.kubevirt.io'],
              apiVersions: ['v1beta1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['hyperconvergeds'],
              scope: 'Namespaced',
            },
          ],
        },
      ],
    },
  };
}

/** Both configurations as two YAML documents, ready for `kubectl apply -f -`. */
export function webhookConfigurationsYaml(o: WebhookOptions): string {
  const { mutating, validating } = webhookConfigurations(o);
  return `${stringify(mutating)}---\n${stringify(validating)}`;
}
