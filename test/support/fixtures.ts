/** AdmissionReview fixtures (from examples/, built from KubeVirt manifests) and builders for table tests. */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyPatch } from 'rfc6902';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

/** Loads an example AdmissionReview, deep-cloned so a test can change it freely. */
export function example(name: string): any {
  return structuredClone(JSON.parse(readFileSync(join(EXAMPLES, `${name}.json`), 'utf8')));
}

export interface IfaceSpec {
  name: string;
  binding?: 'masquerade' | 'bridge' | 'sriov' | 'slirp' | 'passt';
  network?: 'pod' | 'multus';
  mac?: string;
}

/** A KubeVirt VirtualMachine with the given interfaces (and matching networks). */
export function vm(
  name: string,
  namespace: string,
  ifaces: IfaceSpec[],
  extra: { uid?: string; annotations?: Record<string, string> } = {},
): any {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      ...(name ? { name } : { generateName: 'vm-' }),
      namespace,
      ...(extra.uid ? { uid: extra.uid } : {}),
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: {
      runStrategy: 'Always',
      template: {
        spec: {
          domain: {
            devices: {
              interfaces: ifaces.map((i) => ({
                name: i.name,
                [i.binding ?? (i.network === 'multus' ? 'bridge' : 'masquerade')]: {},
                ...(i.mac !== undefined ? { macAddress: i.mac } : {}),
              })),
            },
            resources: { requests: { memory: '128Mi' } },
          },
          networks: ifaces.map((i) =>
            (i.network ?? 'pod') === 'pod'
              ? { name: i.name, pod: {} }
              : { name: i.name, multus: { networkName: `${i.name}-nad` } },
          ),
        },
      },
    },
  };
}

export function review(
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  object: any,
  oldObject: any = null,
  options: { uid?: string; dryRun?: boolean; apiVersion?: string } = {},
): any {
  const meta = (object ?? oldObject).metadata;
  return {
    apiVersion: options.apiVersion ?? 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: options.uid ?? randomUUID(),
      kind: { group: 'kubevirt.io', version: 'v1', kind: 'VirtualMachine' },
      resource: { group: 'kubevirt.io', version: 'v1', resource: 'virtualmachines' },
      ...(meta.name ? { name: meta.name } : {}),
      namespace: meta.namespace,
      operation,
      userInfo: { username: 'kubernetes-admin' },
      object,
      oldObject,
      dryRun: options.dryRun ?? false,
    },
  };
}

/** The JSON Patch of an AdmissionReview response, decoded. */
export function patchOf(response: any): any[] {
  const patch = response?.response?.patch;
  return patch === undefined ? [] : JSON.parse(Buffer.from(patch, 'base64').toString('utf8'));
}

/** Applies the response's patch to the request object (strict RFC 6902) and returns the mutated VM. */
export function mutated(request: any, response: any): any {
  const object = structuredClone(request.request.object);
  const errors = applyPatch(object, patchOf(response)).filter((e) => e !== null);
  if (errors.length > 0) throw new Error(`patch does not apply: ${errors.map(String).join('; ')}`);
  return object;
}

/** MACs of the VM's interfaces, by interface name. */
export function macsOf(vmObject: any): Record<string, string | undefined> {
  return Object.fromEntries(
    (vmObject.spec.template.spec.domain.devices.interfaces as any[]).map((i) => [i.name, i.macAddress]),
  );
}

/** The stored VM after admission: mutated, with a uid as the API server would give it. */
export function stored(request: any, response: any, uid: string = randomUUID()): any {
  const object = mutated(request, response);
  object.metadata.uid = uid;
  if (!object.metadata.name) object.metadata.name = `vm-${uid.slice(0, 5)}`;
  return object;
}

/** A Namespace AdmissionReview, as the namespace sync webhook receives it. */
export function namespaceReview(
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  name: string,
  labels: Record<string, string> | null,
  oldLabels?: Record<string, string>,
  dryRun = false,
) {
  const object = (l: Record<string, string> | null) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, uid: `ns-${name}`, ...(l ? { labels: l } : {}) },
  });
  return envelope(['', 'v1', 'Namespace', 'namespaces'], {
    name,
    operation,
    object: operation === 'DELETE' ? null : object(labels),
    oldObject: operation === 'CREATE' ? null : object(oldLabels ?? labels),
    dryRun,
  });
}

/** A HyperConverged AdmissionReview, as the HyperConverged sync webhook receives it. */
export function hcoReview(
  operation: 'CREATE' | 'UPDATE',
  range: Record<string, unknown> | undefined,
  oldRange?: Record<string, unknown>,
  dryRun = false,
) {
  const object = (r: Record<string, unknown> | undefined) => ({
    apiVersion: 'hco.kubevirt.io/v1beta1',
    kind: 'HyperConverged',
    metadata: { name: 'kubevirt-hyperconverged', namespace: 'openshift-cnv' },
    spec: { infra: {}, workloads: {}, ...(r ? { kubeMacPoolConfiguration: r } : {}) },
  });
  return envelope(['hco.kubevirt.io', 'v1beta1', 'HyperConverged', 'hyperconvergeds'], {
    name: 'kubevirt-hyperconverged',
    namespace: 'openshift-cnv',
    operation,
    object: object(range),
    oldObject: operation === 'UPDATE' ? object(oldRange) : null,
    dryRun,
  });
}

/** An admission.k8s.io/v1 AdmissionReview of one resource (group, version, kind, plural) around `request`. */
function envelope(
  [group, version, kind, resource]: [string, string, string, string],
  request: Record<string, unknown>,
) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: randomUUID(), kind: { group, version, kind }, resource: { group, version, resource }, ...request },
  };
}

export const NETWORKS = 'k8s.v1.cni.cncf.io/networks';

/** A pod as a client sends it: `name` or, for a controller's pod, `{ generateName }`; `networks` is the annotation. */
export function pod(
  name: string | { generateName: string },
  namespace: string,
  networks: string | undefined,
  meta: { uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; phase?: string } = {},
): any {
  const annotations = { ...(networks !== undefined ? { [NETWORKS]: networks } : {}), ...meta.annotations };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(typeof name === 'string' ? { name } : name),
      namespace,
      ...(meta.uid ? { uid: meta.uid } : {}),
      ...(meta.labels ? { labels: meta.labels } : {}),
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'alpine', command: ['sleep', 'infinity'] }] },
    ...(meta.phase ? { status: { phase: meta.phase } } : {}),
  };
}

/** An AdmissionReview of a pod, as kube-apiserver sends it to `/mutate-pods`. */
export function podReview(
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  object: any,
  oldObject: any = null,
  options: { uid?: string; dryRun?: boolean } = {},
): any {
  const r = review(operation, object, oldObject, options);
  r.request.kind = { group: '', version: 'v1', kind: 'Pod' };
  r.request.resource = { group: '', version: 'v1', resource: 'pods' };
  return r;
}

/** The pod's networks annotation after the response's patch, parsed (a JSON list). */
export function networksOf(request: any, response: any): any[] {
  return JSON.parse(mutated(request, response).metadata.annotations[NETWORKS]);
}

/** The pod as the API server stores it after the patch, with the uid it assigns. */
export function storedPod(request: any, response: any, uid: string = randomUUID()): any {
  const object = mutated(request, response);
  object.metadata.name ??= `${object.metadata.generateName}${randomUUID().slice(0, 5)}`;
  object.metadata.uid = uid;
  return object;
}
