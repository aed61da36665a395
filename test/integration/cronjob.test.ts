/**
 * The reconcile CronJob's script, as Terraform deploys it (terraform/modules/cluster/reconcile.tf), run here with
 * the real sh, jq, gzip and curl against the function and the emulator. Only kubectl is a stand-in, printing what
 * `kubectl get` would: there is no API server on this machine.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from '@cdktf/hcl2json';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleCredential } from '../../shared/credentials.js';
import { NETWORKS, pod, vm } from '../support/fixtures.js';
import { claims, type Harness, startFunction } from '../support/harness.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'cronjob-secret-0123456789abcdef';

async function jobLocals(): Promise<{ script: string; filter: string }> {
  const file = join(ROOT, 'terraform/modules/cluster/reconcile.tf');
  const tf = (await parse(file, readFileSync(file, 'utf8'))) as { locals: Record<string, string>[] };
  const locals = Object.assign({}, ...tf.locals) as Record<string, string>;
  return { script: locals.reconcile_script!, filter: locals.reconcile_pod_filter! };
}

describe('the reconcile CronJob script', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    h = await startFunction({ tokens: [{ cluster: 'east', token: SECRET }] });
    dir = mkdtempSync(join(tmpdir(), 'macpool-cronjob-'));
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the VMs, namespaces and only the pods on Multus networks, trimmed, with its header credential', async () => {
    const { script, filter } = await jobLocals();
    const list = (items: unknown[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items, metadata: {} });
    const status = '[{"name":"br","interface":"net1","mac":"02:00:00:00:d0:01"}]';
    const served = pod('web-0', 'lab', '[{"name":"br","mac":"02:00:00:00:d0:01"}]', {
      uid: 'uid-web-0',
      phase: 'Running',
      annotations: { 'k8s.v1.cni.cncf.io/network-status': status, 'example.com/other': 'x' },
    });
    served.spec.containers[0].env = [{ name: 'BIG', value: 'x'.repeat(10_000) }];
    const pods = [
      served,
      pod('virt-launcher-vm-1-abcde', 'lab', '[{"name":"br","mac":"02:00:00:00:d0:02"}]', {
        labels: { 'kubevirt.io': 'virt-launcher' },
        phase: 'Running',
      }),
      pod('done', 'lab', '[{"name":"br","mac":"02:00:00:00:d0:03"}]', { phase: 'Succeeded' }),
      pod('failed', 'lab', '[{"name":"br","mac":"02:00:00:00:d0:04"}]', { phase: 'Failed' }),
      pod('plain', 'lab', undefined, { phase: 'Running' }),
    ];
    const vms = [
      vm('db', 'lab', [{ name: 'n', network: 'multus', mac: '02:00:00:00:d0:10' }], { uid: 'uid-db' }),
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'lab', labels: { 'mutatepods.kubemacpool.io': 'allocate' } },
      },
    ];
    writeFileSync(join(dir, 'vms.list'), list(vms));
    writeFileSync(join(dir, 'pods.list'), list(pods));
    // kubectl's stand-in: what `kubectl get <kinds> -A -o json` prints for the kinds asked.
    const bin = join(dir, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'kubectl'),
      `#!/bin/sh\ncase "$2" in\n  virtualmachines,namespaces) cat "${dir}/vms.list" ;;\n  pods) cat "${dir}/pods.list" ;;\n  *) echo "unexpected kubectl $*" >&2; exit 1 ;;\nesac\n`,
    );
    chmodSync(join(bin, 'kubectl'), 0o755);
    const home = join(dir, 'home');
    mkdirSync(home, { recursive: true });

    const { stdout } = await run('/bin/sh', ['-c', script], {
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: home,
        MACPOOL_URL: h.url,
        MACPOOL_RECONCILE_TOKEN: roleCredential(SECRET, 'reconcile'),
        MACPOOL_POD_FILTER: filter,
      },
    });
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({ vms: 1, pods: 1, finishedPods: 2, healed: 2, wrote: true });
    const docs = await claims(h.db);
    expect(docs.get('02:00:00:00:d0:01')).toMatchObject({
      kind: 'pod',
      name: 'web-0',
      uid: 'uid-web-0',
      state: 'bound',
    });
    expect(docs.get('02:00:00:00:d0:10')).toMatchObject({ kind: 'vm', name: 'db', state: 'bound' });
    for (const mac of ['02:00:00:00:d0:02', '02:00:00:00:d0:03', '02:00:00:00:d0:04'])
      expect(docs.has(mac)).toBe(false);
    // What went over the wire for the pods: identity, phase, the networks and network-status annotations, nothing
    // more; finished pods too (their phase is evidence), virt-launcher pods and pods off Multus networks not at all.
    const sent = JSON.parse(readFileSync(join(home, 'pods.json'), 'utf8'));
    const trimmed = (name: string, uid: string | null, networks: string, phase: string, extra = {}) => ({
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'lab',
        uid,
        deletionTimestamp: null,
        annotations: { [NETWORKS]: networks, ...extra },
      },
      status: { phase },
    });
    expect(sent).toEqual({
      kind: 'List',
      items: [
        trimmed('web-0', 'uid-web-0', '[{"name":"br","mac":"02:00:00:00:d0:01"}]', 'Running', {
          'k8s.v1.cni.cncf.io/network-status': status,
        }),
        trimmed('done', null, '[{"name":"br","mac":"02:00:00:00:d0:03"}]', 'Succeeded'),
        trimmed('failed', null, '[{"name":"br","mac":"02:00:00:00:d0:04"}]', 'Failed'),
      ],
    });
  });

  it('fails, sending nothing, when kubectl fails', async () => {
    const { script, filter } = await jobLocals();
    const bin = join(dir, 'bin-failing');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'kubectl'),
      '#!/bin/sh\necho "error: You must be logged in to the server (Unauthorized)" >&2\nexit 1\n',
    );
    chmodSync(join(bin, 'kubectl'), 0o755);
    const before = h.logs.length;
    const failed = await run('/bin/sh', ['-c', script], {
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: join(dir, 'home'),
        MACPOOL_URL: h.url,
        MACPOOL_RECONCILE_TOKEN: roleCredential(SECRET, 'reconcile'),
        MACPOOL_POD_FILTER: filter,
      },
    }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).not.toBe(0);
    expect(failed?.stderr).toContain('Unauthorized');
    expect(h.logs.slice(before).filter((l) => l.path === '/reconcile')).toEqual([]);
  });
});
