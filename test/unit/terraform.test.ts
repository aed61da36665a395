/**
 * Structure tests for terraform/: every .tf file is parsed with @cdktf/hcl2json (the JSON form of HCL, where blocks
 * are arrays and expressions are "${...}" strings). There is no terraform binary here, so the webhook resources are
 * rendered with a deliberately tiny evaluator (references, string templates, trimsuffix, sha256) and compared with
 * webhookConfigurations(); anything cleverer in that HCL fails the test instead of being skipped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { parse } from '@cdktf/hcl2json';
import { RECONCILE_INDEXES } from '../../shared/store.js';
import { describe, it, expect } from 'vitest';
import { MAX_LIST_ENTRIES, validatePool } from '../../shared/usable.js';
import {
  DEFAULT_TIMEOUT_SECONDS,
  FUNCTION_URL_PATTERN,
  OPT_MODES,
  TOKEN_PATTERN,
  webhookConfigurations,
  type WebhookOptions,
} from '../../shared/webhooks.js';
import { roleCredential } from '../../shared/credentials.js';
import type { BlockSchema, NestedBlockSchema, SchemaFixture } from '../../scripts/terraform-schema.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const TERRAFORM_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../terraform');

// ---------------------------------------------------------------------------------------------------------------
// Loading

interface TfModule {
  dir: string;
  files: Record<string, Obj>;
  resources: Record<string, Record<string, Obj>>;
  data: Record<string, Record<string, Obj>>;
  variables: Record<string, Obj>;
  outputs: Record<string, Obj>;
  locals: Obj;
  requiredProviders: Record<string, Obj>;
  providers: Record<string, Obj[]>;
  modules: Record<string, Obj>;
}

function isObj(v: Json | undefined): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: Json | undefined, what = 'value'): Obj {
  if (!isObj(v)) throw new Error(`${what} is not an object: ${JSON.stringify(v)}`);
  return v;
}

/** A block that appears once: hcl2json gives it as a one-element array. */
function one(v: Json | undefined, what = 'block'): Obj {
  if (!Array.isArray(v) || v.length !== 1) throw new Error(`${what} is not a single block: ${JSON.stringify(v)}`);
  return obj(v[0], what);
}

function blocks(v: Json | undefined): Obj[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`not a block list: ${JSON.stringify(v)}`);
  return v.map((b) => obj(b));
}

function tfFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.tf'))
    .map((e) => join(dir, e.name))
    .sort();
}

function moduleDirs(dir: string): string[] {
  const subdirs = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .flatMap((e) => moduleDirs(join(dir, e.name)));
  return tfFiles(dir).length > 0 ? [dir, ...subdirs] : subdirs;
}

async function loadModule(dir: string): Promise<TfModule> {
  const m: TfModule = {
    dir,
    files: {},
    resources: {},
    data: {},
    variables: {},
    outputs: {},
    locals: {},
    requiredProviders: {},
    providers: {},
    modules: {},
  };
  for (const file of tfFiles(dir)) {
    const parsed = (await parse(file, readFileSync(file, 'utf8'))) as Obj;
    m.files[relative(TERRAFORM_DIR, file)] = parsed;
    for (const [kind, target] of [
      ['resource', m.resources],
      ['data', m.data],
    ] as const) {
      for (const [type, byName] of Object.entries(obj(parsed[kind] ?? {}))) {
        for (const [name, body] of Object.entries(obj(byName))) {
          (target[type] ??= {})[name] = one(body, `${kind} ${type}.${name}`);
        }
      }
    }
    for (const [name, body] of Object.entries(obj(parsed.variable ?? {})))
      m.variables[name] = one(body, `variable ${name}`);
    for (const [name, body] of Object.entries(obj(parsed.output ?? {}))) m.outputs[name] = one(body, `output ${name}`);
    for (const [name, body] of Object.entries(obj(parsed.module ?? {}))) m.modules[name] = one(body, `module ${name}`);
    for (const l of blocks(parsed.locals)) Object.assign(m.locals, l);
    for (const [name, body] of Object.entries(obj(parsed.provider ?? {}))) m.providers[name] = blocks(body);
    for (const t of blocks(parsed.terraform)) {
      for (const rp of blocks(t.required_providers)) Object.assign(m.requiredProviders, rp);
    }
  }
  return m;
}

const modules = await Promise.all(moduleDirs(TERRAFORM_DIR).map(loadModule));
const moduleAt = (path: string): TfModule => {
  const m = modules.find((x) => relative(TERRAFORM_DIR, x.dir) === path);
  if (m === undefined) throw new Error(`no Terraform module at terraform/${path}`);
  return m;
};
const root = moduleAt('');
const cluster = moduleAt('modules/cluster');
const example = moduleAt('examples/basic');

function resource(m: TfModule, type: string, name: string): Obj {
  const r = m.resources[type]?.[name];
  if (r === undefined) throw new Error(`${relative(TERRAFORM_DIR, m.dir) || 'root'}: no resource ${type}.${name}`);
  return r;
}

/** Every string anywhere in a parsed value, with its attribute path. */
function strings(v: Json, path = ''): { path: string; value: string }[] {
  if (typeof v === 'string') return [{ path, value: v }];
  if (Array.isArray(v)) return v.flatMap((x, i) => strings(x, `${path}[${i}]`));
  if (isObj(v)) return Object.entries(v).flatMap(([k, x]) => strings(x, path ? `${path}.${k}` : k));
  return [];
}

/** Decodes the escapes of an HCL quoted string (as found inside expressions). */
function hclUnescape(s: string): string {
  return s.replace(/\\(["\\nrt])/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c);
}

/** The regex literals in a condition, in order. */
function regexesIn(condition: string): string[] {
  return [...condition.matchAll(/regex\("((?:[^"\\]|\\.)*)"/g)].map((x) => hclUnescape(x[1] ?? ''));
}

function onlyRegex(m: TfModule, variable: string, index = 0): RegExp {
  const validation = blocks(obj(m.variables[variable]).validation)[index];
  const found = regexesIn(String(validation?.condition));
  expect(found, `${variable} validation ${index}`).toHaveLength(1);
  return new RegExp(found[0] ?? '');
}

// ---------------------------------------------------------------------------------------------------------------
// A tiny evaluator for the webhook HCL: var/local references, attribute and index access, string templates,
// trimsuffix() and sha256(). Unsupported syntax throws.

interface Scope {
  vars: Obj;
  locals: Obj;
}

function evaluate(v: Json, scope: Scope): Json {
  if (typeof v === 'string') return evaluateTemplate(v, scope);
  if (Array.isArray(v)) return v.map((x) => evaluate(x, scope));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, evaluate(x, scope)]));
  return v;
}

function evaluateTemplate(s: string, scope: Scope): Json {
  const parts: Json[] = [];
  let literal = '';
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('$${', i)) {
      literal += '${';
      i += 3;
    } else if (s.startsWith('%{', i)) {
      throw new Error(`template directives are not supported: ${s}`);
    } else if (s.startsWith('${', i)) {
      const end = closingBrace(s, i + 2);
      if (literal) parts.push(literal);
      literal = '';
      parts.push(evaluateExpression(s.slice(i + 2, end), scope));
      i = end + 1;
    } else {
      literal += s[i];
      i += 1;
    }
  }
  if (literal) parts.push(literal);
  if (parts.length === 1 && s.startsWith('${') && s.endsWith('}')) return parts[0] ?? null;
  return parts.map((p) => (typeof p === 'string' || typeof p === 'number' ? String(p) : JSON.stringify(p))).join('');
}

function closingBrace(s: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  throw new Error(`unterminated interpolation in ${s}`);
}

const FUNCTIONS: Record<string, (args: Json[]) => Json> = {
  trimsuffix: ([s, suffix]) => {
    if (typeof s !== 'string' || typeof suffix !== 'string') throw new Error('trimsuffix takes two strings');
    return s.endsWith(suffix) ? s.slice(0, s.length - suffix.length) : s;
  },
  // Terraform's sha256(): the lower-case hex SHA-256 of the string's UTF-8 bytes.
  sha256: ([s]) => {
    if (typeof s !== 'string') throw new Error('sha256 takes a string');
    return createHash('sha256').update(s, 'utf8').digest('hex');
  },
};

function evaluateExpression(source: string, scope: Scope): Json {
  const tokens = source.match(/"(?:[^"\\]|\\.)*"|[A-Za-z_][\w-]*|\d+|[.[\](),]|\S/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos];
  const take = (expected?: string): string => {
    const t = tokens[pos++];
    if (t === undefined || (expected !== undefined && t !== expected)) {
      throw new Error(`unsupported expression ${JSON.stringify(source)} near ${JSON.stringify(t)}`);
    }
    return t;
  };
  const expression = (): Json => {
    const t = take();
    let value: Json;
    if (t.startsWith('"')) value = evaluateTemplate(hclUnescape(t.slice(1, -1)), scope);
    else if (/^\d+$/.test(t)) value = Number(t);
    else if (peek() === '(') {
      const fn = FUNCTIONS[t];
      if (fn === undefined) throw new Error(`unsupported function ${t} in ${source}`);
      take('(');
      const args: Json[] = [];
      while (peek() !== ')') {
        args.push(expression());
        if (peek() === ',') take(',');
      }
      take(')');
      value = fn(args);
    } else if (t === 'var' || t === 'local') {
      take('.');
      const name = take();
      const table = t === 'var' ? scope.vars : scope.locals;
      if (!(name in table)) throw new Error(`unknown ${t}.${name}`);
      value = t === 'var' ? (table[name] ?? null) : evaluate(table[name] ?? null, scope);
    } else throw new Error(`unsupported expression ${JSON.stringify(source)}`);
    for (;;) {
      if (peek() === '.') {
        take('.');
        value = obj(value, source)[take()] ?? null;
      } else if (peek() === '[') {
        take('[');
        const key = expression();
        take(']');
        value = Array.isArray(value) ? (value[Number(key)] ?? null) : (obj(value, source)[String(key)] ?? null);
      } else return value;
    }
  };
  const value = expression();
  if (pos !== tokens.length) throw new Error(`unsupported expression ${JSON.stringify(source)}`);
  return value;
}

/** Variable values: the given ones over the module's defaults. */
function scopeFor(m: TfModule, given: Obj): Scope {
  const defaults = Object.fromEntries(
    Object.entries(m.variables)
      .filter(([, v]) => 'default' in v)
      .map(([k, v]) => [k, v.default ?? null]),
  );
  return { vars: { ...defaults, ...given }, locals: m.locals };
}

const LIST_BLOCKS: Record<string, string> = {
  webhook: 'webhooks',
  rule: 'rules',
  match_expressions: 'matchExpressions',
};
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** An evaluated kubernetes_*_v1 block in the Kubernetes API's shape. */
function toKubernetes(block: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(block)) {
    const listName = LIST_BLOCKS[k];
    if (listName !== undefined) out[listName] = blocks(v).map(toKubernetes);
    else if (Array.isArray(v) && v.length > 0 && v.every(isObj)) out[camel(k)] = toKubernetes(one(v));
    else out[camel(k)] = v;
  }
  return out;
}

function renderWebhooks(given: Obj): { mutating: Obj; validating: Obj } {
  const scope = scopeFor(cluster, given);
  const render = (type: string): Obj => toKubernetes(obj(evaluate(resource(cluster, type, 'macpool'), scope), type));
  return {
    mutating: render('kubernetes_mutating_webhook_configuration_v1'),
    validating: render('kubernetes_validating_webhook_configuration_v1'),
  };
}

const withoutTypeMeta = ({ metadata, webhooks }: { metadata: unknown; webhooks: unknown }) => ({ metadata, webhooks });

// ---------------------------------------------------------------------------------------------------------------

describe('terraform layout', () => {
  it('finds the root, cluster and example modules', () => {
    expect(modules.map((m) => relative(TERRAFORM_DIR, m.dir)).sort()).toEqual([
      '',
      'examples/basic',
      'modules/cluster',
    ]);
  });

  it.each(modules.map((m) => ({ name: relative(TERRAFORM_DIR, m.dir) || 'root', m })))(
    '$name has versions.tf, variables.tf and outputs.tf',
    ({ m }) => {
      const files = Object.keys(m.files).map((f) => f.split('/').pop());
      expect(files).toEqual(expect.arrayContaining(['versions.tf', 'variables.tf', 'outputs.tf']));
    },
  );

  it.each(modules.map((m) => ({ name: relative(TERRAFORM_DIR, m.dir) || 'root', m })))(
    '$name: every provider has a version range with an upper bound',
    ({ m }) => {
      expect(Object.keys(m.requiredProviders).length).toBeGreaterThan(0);
      for (const [name, p] of Object.entries(m.requiredProviders)) {
        expect(String(p.version), name).toMatch(/^>= ?\d[\d.]*, ?< ?\d[\d.]*$/);
        expect(String(p.source), name).toBe(`hashicorp/${name}`);
      }
    },
  );

  it('pins provider ranges as the project agreed', () => {
    // google-beta is not required: no resource uses it.
    expect(Object.keys(root.requiredProviders).sort()).toEqual(['archive', 'google', 'random']);
    expect(root.requiredProviders.google?.version).toBe('>= 6.0, < 8.0');
    expect(cluster.requiredProviders).toEqual({
      kubernetes: { source: 'hashicorp/kubernetes', version: '>= 2.30, < 4.0' },
    });
    expect(root.requiredProviders).not.toHaveProperty('kubernetes');
    for (const m of modules) {
      const terraform = blocks(Object.values(m.files).find((f) => f.terraform)?.terraform)[0];
      expect(terraform?.required_version).toBe('>= 1.5');
    }
  });

  // Free-form inputs: anything is accepted, or the provider reports a clear error itself.
  const UNCONSTRAINED = new Set(['source_dir', 'kubeconfig_path', 'cluster_a_context', 'cluster_b_context']);
  it.each(
    modules.flatMap((m) =>
      Object.entries(m.variables).map(([name, v]) => ({
        name: `${relative(TERRAFORM_DIR, m.dir) || 'root'}: ${name}`,
        key: name,
        v,
      })),
    ),
  )('variable $name has a type, a description and (where constrained) validations', ({ key, v }) => {
    expect(v.type).toMatch(/^\$\{.+\}$/s);
    expect(String(v.description).length).toBeGreaterThan(20);
    const validations = blocks(v.validation);
    if (v.type !== '${bool}' && !UNCONSTRAINED.has(key)) expect(validations.length).toBeGreaterThan(0);
    for (const val of validations) {
      expect(String(val.condition)).toMatch(/^\$\{.+\}$/s);
      expect(String(val.error_message)).toMatch(/must|expected/);
    }
  });

  it.each(
    modules.flatMap((m) =>
      Object.entries(m.outputs).map(([name, o]) => ({
        name: `${relative(TERRAFORM_DIR, m.dir) || 'root'}: ${name}`,
        o,
      })),
    ),
  )('output $name has a description', ({ o }) => {
    expect(String(o.description).length).toBeGreaterThan(20);
  });

  // A run of 16+ letters and digits with at least three of each: how generated tokens look, and no word does.
  const looksLikeSecret = (s: string) =>
    s
      .split(/[^A-Za-z0-9]+/)
      .some((w) => w.length >= 16 && (w.match(/\d/g) ?? []).length >= 3 && (w.match(/[A-Za-z]/g) ?? []).length >= 3);
  it.each([
    { name: 'hex token', s: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', secret: true },
    { name: 'token in MACPOOL_TOKENS', s: 'cluster-a=Zk3rT9pQ2mL8xV4n', secret: true },
    { name: 'API name', s: 'artifactregistry.googleapis.com', secret: false },
    { name: 'image', s: 'docker.io/alpine/k8s:1.34.1', secret: false },
    { name: 'api group', s: 'rbac.authorization.k8s.io', secret: false },
    { name: 'function URL', s: 'https://macpool-abc123-uc.a.run.app', secret: false },
  ])('the secret detector classifies $name', ({ s, secret }) => {
    expect(looksLikeSecret(s)).toBe(secret);
  });

  it.each(
    Object.entries(Object.fromEntries(modules.flatMap((m) => Object.entries(m.files)))).map(([name, f]) => ({
      name,
      f,
    })),
  )('$name has no hard-coded project ids or token-like literals', ({ f }) => {
    for (const { path, value } of strings(f)) {
      if (/(^|\.)(project|project_id|billing_project)$/.test(path)) expect(value, path).toMatch(/^\$\{[^}]+\}$/);
      expect(value, path).not.toMatch(/projects\/[a-z][a-z0-9-]{4,28}[a-z0-9]\//);
      expect(looksLikeSecret(value), `${path}: ${value}`).toBe(false);
    }
  });
});

describe('terraform root module (Google Cloud)', () => {
  it.each([
    'google_project_service.apis',
    'google_firestore_database.default',
    'google_firestore_field.macs_expire_at',
    'google_firestore_document.range',
    'google_storage_bucket.source',
    'google_storage_bucket_object.source',
    'google_cloudfunctions2_function.macpool',
    'google_service_account.function',
    'google_service_account.build',
    'google_project_iam_member.function',
    'google_project_iam_member.build',
    'google_secret_manager_secret.tokens',
    'google_secret_manager_secret_version.tokens',
    'google_secret_manager_secret_iam_member.function_tokens',
    'google_cloud_run_v2_service_iam_member.public',
    'random_password.cluster_token',
    'google_logging_metric.events',
    'google_monitoring_alert_policy.events',
  ])('declares %s', (address) => {
    const [type = '', name = ''] = address.split('.');
    expect(resource(root, type, name)).toBeDefined();
  });

  it('enables the APIs it needs and never disables them on destroy', () => {
    const apis = resource(root, 'google_project_service', 'apis');
    expect(apis.for_each).toBe('${local.services}');
    expect(apis.disable_on_destroy).toBe(false);
    const services = String(root.locals.services);
    for (const api of [
      'cloudfunctions',
      'run',
      'cloudbuild',
      'artifactregistry',
      'firestore',
      'secretmanager',
      'logging',
      'monitoring',
      'storage',
      'iam',
    ]) {
      expect(services).toContain(`"${api}.googleapis.com"`);
    }
  });

  it('creates the (default) Firestore database in native mode at a configurable location', () => {
    const db = resource(root, 'google_firestore_database', 'default');
    expect(db).toMatchObject({ name: '(default)', type: 'FIRESTORE_NATIVE', project: '${var.project_id}' });
    expect(db.location_id).toBe('${coalesce(var.firestore_location, var.region)}');
  });

  it('sets a TTL policy on macs.expireAt', () => {
    const index = resource(root, 'google_firestore_index', 'macs_cooling_down');
    expect(index.collection).toBe('macs');
    expect(blocks(index.fields).map((f) => f.field_path)).toEqual(['state', 'releasedAt', '__name__']);
    const ttl = resource(root, 'google_firestore_field', 'macs_expire_at');
    expect(ttl).toMatchObject({ collection: 'macs', field: 'expireAt' });
    expect(ttl.ttl_config).toEqual([{}]);
  });

  it("indexes what the reconcile's cell aggregations filter on (R7), as shared/store.ts lists them", () => {
    const index = resource(root, 'google_firestore_index', 'macs_reconcile');
    expect(index.for_each).toBe('${local.reconcile_indexes}');
    expect(index.collection).toBe('macs');
    const fields = one(obj(index.dynamic, 'dynamic').fields as never) as Obj;
    expect(fields.for_each).toBe('${each.value}');
    expect(one(fields.content as never)).toEqual({ field_path: '${fields.value}', order: 'ASCENDING' });
    const declared = Object.values(obj(root.locals.reconcile_indexes ?? null, 'reconcile_indexes'));
    expect(declared.sort()).toEqual([...RECONCILE_INDEXES].map((f) => [...f]).sort());
  });

  it('writes the range document once and then leaves it to operators', () => {
    const doc = resource(root, 'google_firestore_document', 'range');
    expect(doc).toMatchObject({ collection: 'config', document_id: 'kubeMacPoolConfiguration' });
    expect(String(doc.fields)).toMatch(/rangeStart\s*=\s*\{\s*stringValue\s*=\s*var\.mac_range\.start\s*\}/);
    expect(String(doc.fields)).toMatch(/rangeEnd\s*=\s*\{\s*stringValue\s*=\s*var\.mac_range\.end\s*\}/);
    expect(one(doc.lifecycle).ignore_changes).toEqual(['${fields}']);
  });

  it('packages the repository without what the build does not need', () => {
    const archive = obj(root.data.archive_file?.source, 'data.archive_file.source');
    expect(archive).toMatchObject({
      type: 'zip',
      source_dir: '${local.source_dir}',
      excludes: '${local.source_excludes}',
    });
    expect(root.locals.source_dir).toBe('${coalesce(var.source_dir, "${path.module}/..")}');
    expect(root.locals.source_excludes).toEqual(
      expect.arrayContaining([
        'node_modules',
        'dist',
        '.git',
        'terraform',
        'test',
        'bench',
        'docs',
        'examples',
        'coverage',
      ]),
    );
    expect(root.locals.source_excludes).not.toContain('package-lock.json');
  });

  it('names the source object by the archive hash, so a code change redeploys', () => {
    const object = resource(root, 'google_storage_bucket_object', 'source');
    expect(object.name).toMatch(/\$\{data\.archive_file\.source\.output_(md5|sha256|base64sha256)\}/);
    const source = one(
      one(one(resource(root, 'google_cloudfunctions2_function', 'macpool').build_config).source).storage_source,
    );
    expect(source).toEqual({
      bucket: '${google_storage_bucket.source.name}',
      object: '${google_storage_bucket_object.source.name}',
    });
  });

  it('builds nodejs22 with entry point macpool under its own build account', () => {
    const build = one(resource(root, 'google_cloudfunctions2_function', 'macpool').build_config);
    expect(build).toMatchObject({
      runtime: 'nodejs22',
      entry_point: 'macpool',
      service_account: '${google_service_account.build.id}',
    });
  });

  it('runs warm, concurrent, public, with the dedicated account and the token secret', () => {
    const service = one(resource(root, 'google_cloudfunctions2_function', 'macpool').service_config);
    expect(service).toMatchObject({
      available_memory: '${var.available_memory}',
      available_cpu: '1',
      min_instance_count: '${var.min_instance_count}',
      max_instance_count: '${var.max_instance_count}',
      max_instance_request_concurrency: '${var.max_instance_request_concurrency}',
      timeout_seconds: 300,
      ingress_settings: 'ALLOW_ALL',
      service_account_email: '${google_service_account.function.email}',
      environment_variables: { GOOGLE_CLOUD_PROJECT: '${var.project_id}', NODE_ENV: 'production' },
    });
    expect(one(service.secret_environment_variables)).toEqual({
      key: 'MACPOOL_TOKENS',
      project_id: '${var.project_id}',
      secret: '${google_secret_manager_secret.tokens.secret_id}',
      version: '${google_secret_manager_secret_version.tokens.version}',
    });
    expect(root.variables.available_memory?.default).toBe('512M');
    expect(root.variables.min_instance_count?.default).toBe(1);
    expect(root.variables.max_instance_request_concurrency?.default).toBe(16);
  });

  it('names the token secret macpool-tokens by default and replaces its version without a gap', () => {
    expect(resource(root, 'google_secret_manager_secret', 'tokens').secret_id).toBe('${var.function_name}-tokens');
    expect(root.variables.function_name?.default).toBe('macpool');
    const version = resource(root, 'google_secret_manager_secret_version', 'tokens');
    expect(version.secret_data).toBe('${local.tokens_env}');
    expect(one(version.lifecycle).create_before_destroy).toBe(true);
    expect(root.variables.clusters?.sensitive).toBe(true);
  });

  it('gives the runtime account roles/datastore.user and access to the one secret, nothing else', () => {
    const grants = Object.entries(root.resources)
      .filter(([type]) => /_iam_(member|binding|policy)$/.test(type))
      .flatMap(([type, byName]) => Object.entries(byName).map(([name, r]) => ({ address: `${type}.${name}`, r })))
      .filter(({ r }) => JSON.stringify(r).includes('google_service_account.function.'));
    expect(grants.map((g) => g.address).sort()).toEqual([
      'google_project_iam_member.function',
      'google_secret_manager_secret_iam_member.function_tokens',
    ]);
    const project = resource(root, 'google_project_iam_member', 'function');
    expect(project.role).toBe('${each.value}');
    expect(project.for_each).toBe('${toset(["roles/datastore.user"])}');
    expect(resource(root, 'google_secret_manager_secret_iam_member', 'function_tokens')).toMatchObject({
      secret_id: '${google_secret_manager_secret.tokens.secret_id}',
      role: 'roles/secretmanager.secretAccessor',
      member: '${google_service_account.function.member}',
    });
  });

  it('lets allUsers invoke the function through its Cloud Run service', () => {
    expect(resource(root, 'google_cloud_run_v2_service_iam_member', 'public')).toMatchObject({
      name: '${google_cloudfunctions2_function.macpool.service_config[0].service}',
      role: 'roles/run.invoker',
      member: 'allUsers',
    });
    expect(Object.keys(root.resources).filter((t) => t.startsWith('google_cloudfunctions2_function_iam'))).toEqual([]);
    expect(root.outputs.function_url?.depends_on).toEqual(['${google_cloud_run_v2_service_iam_member.public}']);
  });

  it("S6: keeps the function's request logs (URLs with credentials) out of the _Default bucket, unless turned off", () => {
    const exclusion = resource(root, 'google_logging_project_exclusion', 'request_logs');
    expect(exclusion.count).toBe('${var.exclude_request_logs ? 1 : 0}');
    expect(root.variables.exclude_request_logs).toMatchObject({ type: '${bool}', default: true });
    const filter = String(exclusion.filter)
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    // Lines of a logging filter are ANDed: exactly the request log of exactly this function's service.
    expect(filter).toEqual([
      'resource.type="cloud_run_revision"',
      'resource.labels.service_name="${var.function_name}"',
      'log_id("run.googleapis.com/requests")',
    ]);
    // The metrics read the function's own lines (stdout), which the exclusion leaves alone.
    expect(resource(root, 'google_logging_metric', 'events').filter).not.toContain('run.googleapis.com/requests');
  });

  it('releases Firestore security rules that deny every mobile and web client request', () => {
    const ruleset = resource(root, 'google_firebaserules_ruleset', 'firestore');
    const file = one(one(ruleset.source).files);
    expect(file).toEqual({ name: 'firestore.rules', content: '${file("${path.module}/firestore.rules")}' });
    const rules = readFileSync(join(TERRAFORM_DIR, 'firestore.rules'), 'utf8').replace(/\/\/.*$/gm, '');
    expect(rules).toMatch(/^\s*rules_version = '2';/);
    // One match over every document, and nothing but a denial.
    expect([...rules.matchAll(/\ballow\b[^;]*;/g)].map((m) => m[0])).toEqual(['allow read, write: if false;']);
    expect(rules).toMatch(/match \/databases\/\{database\}\/documents \{\s*match \/\{document=\*\*\} \{/);
    expect(resource(root, 'google_firebaserules_release', 'firestore')).toMatchObject({
      name: 'cloud.firestore',
      ruleset_name: 'projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}',
    });
    expect(String(root.locals.services)).toContain('"firebaserules.googleapis.com"');
  });

  it.each([
    { name: 'allocations', event: 'mac-allocated', flag: 'enable_allocation_metric' },
    { name: 'range-full', event: 'range-full', flag: 'enable_range_full_metric' },
    { name: 'collisions', event: 'mac-collision', flag: 'enable_collision_metric' },
  ])('defines the optional $name log metric on jsonPayload.event="$event"', ({ name, event, flag }) => {
    expect(obj(root.locals.log_metrics)[name]).toMatchObject({ enabled: `\${var.${flag}}`, event });
    expect(root.variables[flag]).toMatchObject({ type: '${bool}', default: true });
    const metric = resource(root, 'google_logging_metric', 'events');
    expect(metric.filter).toContain('jsonPayload.event="${each.value.event}"');
    expect(metric.filter).toContain('resource.type="cloud_run_revision"');
    expect(metric.for_each).toContain('if m.enabled');
  });

  it('alerts on exhaustion and collisions when asked, to the given channels', () => {
    expect(Object.keys(obj(root.locals.alerts)).sort()).toEqual(['collisions', 'range-full']);
    const policy = resource(root, 'google_monitoring_alert_policy', 'events');
    expect(policy.notification_channels).toBe('${var.alert_notification_channels}');
    expect(policy.for_each).toContain('var.enable_alerts');
    expect(root.variables.enable_alerts?.default).toBe(false);
  });

  it('marks outputs that carry secrets or credentials sensitive; the cluster module builds the URLs', () => {
    expect(Object.keys(root.outputs)).toEqual(
      expect.arrayContaining(['function_url', 'cluster_tokens', 'service_account_email']),
    );
    expect(root.outputs).not.toHaveProperty('webhook_urls');
    expect(cluster.outputs.webhook_urls?.sensitive).toBe(true);
    expect(root.outputs.cluster_tokens?.sensitive).toBe(true);
    expect(root.outputs.function_url?.value).toBe('${google_cloudfunctions2_function.macpool.service_config[0].uri}');
  });
});

describe("the cluster module's webhook_urls output", () => {
  /** Each key names the webhook whose URL it must be. */
  const EXPECTED: Record<string, string> = {
    vm: 'mutatevirtualmachines.kubemacpool.io',
    release: 'releasevirtualmachines.kubemacpool.io',
    pod: 'mutatepods.kubemacpool.io',
    pod_release: 'releasepods.kubemacpool.io',
    namespace_sync: 'syncnamespaces.kubemacpool.io',
    hyperconverged_sync: 'validatehyperconverged.kubemacpool.io',
  };
  const value = obj(cluster.outputs.webhook_urls?.value, 'webhook_urls');
  const webhookAt = (ref: string): string => {
    const m =
      /^\$\{(kubernetes_\w+_webhook_configuration_v1)\.macpool\.webhook\[(\d+)\]\.client_config\[0\]\.url\}$/.exec(ref);
    if (m === null) throw new Error(`not a webhook URL reference: ${ref}`);
    const hooks = blocks(resource(cluster, m[1]!, 'macpool').webhook);
    return String(obj(hooks[Number(m[2])], 'webhook').name);
  };

  it.each(Object.entries(EXPECTED))('%s is the URL of %s', (key, name) => {
    expect(webhookAt(String(value[key]))).toBe(name);
  });

  it('has an entry for every webhook the module registers', () => {
    const names = ['kubernetes_mutating_webhook_configuration_v1', 'kubernetes_validating_webhook_configuration_v1']
      .flatMap((type) => blocks(resource(cluster, type, 'macpool').webhook))
      .map((w) => String(obj(w, 'webhook').name));
    expect(Object.keys(value).sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(names.sort()).toEqual(Object.values(EXPECTED).sort());
  });
});

/** Ranges as Terraform takes them, and which of its checks (format, unicast, order) each fails. */
const RANGE_CASES: { name: string; start: string; end: string; failing: number[] }[] = [
  { name: 'KMP default', start: '02:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF', failing: [] },
  { name: 'one MAC', start: '02:00:00:00:00:0a', end: '02:00:00:00:00:0A', failing: [] },
  { name: 'lower case', start: '0a:00:00:00:00:00', end: '0a:ff:ff:ff:ff:ff', failing: [] },
  { name: 'universal unicast', start: '00:11:22:00:00:00', end: '00:11:22:ff:ff:ff', failing: [] },
  { name: 'multicast start', start: '01:00:00:00:00:00', end: '02:00:00:00:00:00', failing: [1] },
  { name: 'multicast end', start: '02:00:00:00:00:00', end: '03:00:00:00:00:00', failing: [1] },
  { name: 'broadcast', start: 'FF:FF:FF:FF:FF:FF', end: 'FF:FF:FF:FF:FF:FF', failing: [1] },
  { name: 'reversed', start: '02:FF:FF:FF:FF:FF', end: '02:00:00:00:00:00', failing: [2] },
  { name: 'reversed in a low octet', start: '02:00:00:00:01:00', end: '02:00:00:00:00:ff', failing: [2] },
  { name: 'dash separators', start: '02-00-00-00-00-00', end: '02:FF:FF:FF:FF:FF', failing: [0] },
  { name: 'five octets', start: '02:00:00:00:00', end: '02:FF:FF:FF:FF:FF', failing: [0] },
  { name: 'seven octets', start: '02:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF:FF', failing: [0] },
  { name: 'one-digit octet', start: '2:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF', failing: [0, 1] },
  { name: 'non-hex digit', start: '02:00:00:00:00:0G', end: '02:FF:FF:FF:FF:FF', failing: [0] },
  { name: 'leading space', start: ' 02:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF', failing: [0, 1] },
  { name: 'dotted', start: '0200.0000.0000', end: '02FF.FFFF.FFFF', failing: [0] },
];

describe('terraform variable validations', () => {
  const macValidations = blocks(root.variables.mac_range?.validation).map((v) => String(v.condition));
  const FOR_BOTH =
    /^\$\{alltrue\(\[for mac in \[var\.mac_range\.start, var\.mac_range\.end\] : can\(regex\("((?:[^"\\]|\\.)*)", mac\)\)\]\)\}$/;
  const ORDER =
    '${try(parseint(replace(var.mac_range.start, ":", ""), 16) <= parseint(replace(var.mac_range.end, ":", ""), 16), true)}';

  /** The mac_range conditions as TypeScript predicates: the regexes are the ones in the HCL. */
  const checks = macValidations.map((condition, i): ((r: { start: string; end: string }) => boolean) => {
    const perMac = FOR_BOTH.exec(condition);
    if (perMac) {
      const re = new RegExp(hclUnescape(perMac[1] ?? ''));
      return (r) => re.test(r.start) && re.test(r.end);
    }
    if (condition === ORDER) {
      // parseint() of a malformed value fails inside try(), which yields true.
      const value = (mac: string) =>
        /^[0-9A-Fa-f]+$/.test(mac.replaceAll(':', '')) ? BigInt(`0x${mac.replaceAll(':', '')}`) : undefined;
      return (r) => {
        const [s, e] = [value(r.start), value(r.end)];
        return s === undefined || e === undefined || s <= e;
      };
    }
    throw new Error(`mac_range validation ${i} has an unrecognised shape: ${condition}`);
  });

  it('has a format, a unicast and an order check', () => {
    expect(macValidations).toHaveLength(3);
    expect(macValidations.filter((c) => FOR_BOTH.test(c))).toHaveLength(2);
    expect(macValidations).toContain(ORDER);
    expect(root.variables.mac_range?.default).toEqual({ start: '02:00:00:00:00:00', end: '02:FF:FF:FF:FF:FF' });
  });

  it.each(RANGE_CASES)('mac_range $name: failing checks $failing', ({ start, end, failing }) => {
    const failed = checks.flatMap((check, i) => (check({ start, end }) ? [] : [i]));
    // Checks are listed in file order: format, unicast, order.
    expect(failed).toEqual(failing);
  });

  const clusterValidations = blocks(root.variables.clusters?.validation).map((v) => String(v.condition));
  const regexOf = (needle: string): RegExp => {
    const condition = clusterValidations.find((c) => c.includes(needle));
    const found = regexesIn(condition ?? '');
    expect(found, needle).toHaveLength(1);
    return new RegExp(found[0] ?? '');
  };

  it.each([
    { name: 'cluster-a', ok: true },
    { name: 'a', ok: true },
    { name: '0', ok: true },
    { name: 'x'.repeat(63), ok: true },
    { name: 'x'.repeat(64), ok: false },
    { name: 'Cluster-A', ok: false },
    { name: '-a', ok: false },
    { name: 'a-', ok: false },
    { name: 'a_b', ok: false },
    { name: 'a=b', ok: false },
    { name: '', ok: false },
  ])('cluster name "$name" valid: $ok', ({ name, ok }) => {
    expect(regexOf('c.name').test(name)).toBe(ok);
  });

  const tokens = [
    { name: 'hex 32 bytes', token: 'ab'.repeat(32), ok: true },
    { name: '16 unreserved', token: 'Aa0._~-Aa0._~-Aa', ok: true },
    { name: '256 characters', token: 'a'.repeat(256), ok: true },
    { name: '15 characters', token: 'a'.repeat(15), ok: false },
    { name: '257 characters', token: 'a'.repeat(257), ok: false },
    { name: 'slash', token: 'abcdefgh/ijklmnop', ok: false },
    { name: 'comma', token: 'abcdefgh,ijklmnop', ok: false },
    { name: 'equals', token: 'abcdefgh=ijklmnop', ok: false },
    { name: 'percent', token: 'abcdefgh%20jklmnop', ok: false },
  ];
  it.each(tokens)('token $name valid: $ok (root, cluster module and TypeScript agree)', ({ token, ok }) => {
    expect(regexOf('concat(c.token').test(token)).toBe(ok);
    expect(onlyRegex(cluster, 'token').test(token)).toBe(ok);
    expect(TOKEN_PATTERN.test(token)).toBe(ok);
  });

  it('uses the TypeScript patterns verbatim', () => {
    expect(onlyRegex(cluster, 'token').source).toBe(TOKEN_PATTERN.source);
    expect(onlyRegex(cluster, 'function_url').source).toBe(FUNCTION_URL_PATTERN.source);
  });

  it.each([
    { name: 'run.app', url: 'https://macpool-abc123-uc.a.run.app', ok: true },
    { name: 'trailing slash', url: 'https://macpool-abc123-uc.a.run.app/', ok: true },
    { name: 'with path', url: 'https://europe-west1-p.cloudfunctions.net/macpool', ok: true },
    { name: 'with port', url: 'https://macpool.example.com:8443', ok: true },
    { name: 'http', url: 'http://macpool.example.com', ok: false },
    { name: 'query', url: 'https://macpool.example.com/?a=b', ok: false },
    { name: 'fragment', url: 'https://macpool.example.com/#a', ok: false },
    { name: 'userinfo', url: 'https://u:p@macpool.example.com', ok: false },
    { name: 'no host', url: 'https:///macpool', ok: false },
    { name: 'space', url: 'https://macpool.example.com/a b', ok: false },
  ])('function_url $name valid: $ok (cluster module and webhookConfigurations agree)', ({ url, ok }) => {
    expect(onlyRegex(cluster, 'function_url').test(url)).toBe(ok);
    const build = () => webhookConfigurations({ url, token: 'ab'.repeat(16) });
    if (ok) expect(build).not.toThrow();
    else expect(build).toThrow(/invalid function URL/);
  });

  it.each([
    { name: '*/5 * * * *', ok: true },
    { name: '0 3 * * 1-5', ok: true },
    { name: '@hourly', ok: true },
    { name: '*/5 * * *', ok: false },
    { name: '@sometimes', ok: false },
    { name: '', ok: false },
  ])('schedule "$name" valid: $ok', ({ name, ok }) => {
    expect(onlyRegex(cluster, 'schedule').test(name)).toBe(ok);
  });

  it('restricts opt_mode to the TypeScript OPT_MODES and timeout_seconds to 1..30', () => {
    const conditions = (name: string) => blocks(cluster.variables[name]?.validation).map((v) => String(v.condition));
    expect(conditions('opt_mode')).toEqual([
      `\${contains(${JSON.stringify([...OPT_MODES]).replace(',', ', ')}, var.opt_mode)}`,
    ]);
    expect(conditions('timeout_seconds')).toEqual([
      '${var.timeout_seconds >= 1 && var.timeout_seconds <= 30 && floor(var.timeout_seconds) == var.timeout_seconds}',
    ]);
  });
});

describe('terraform cluster module (Kubernetes)', () => {
  const url = 'https://macpool-abc123-uc.a.run.app';
  const token = '0123456789abcdef0123456789abcdef';

  it('defaults to what webhookConfigurations() defaults to', () => {
    expect(cluster.variables.opt_mode?.default).toBe('opt-out');
    expect(cluster.variables.pod_opt_mode?.default).toBe('opt-in');
    expect(cluster.variables.timeout_seconds?.default).toBe(DEFAULT_TIMEOUT_SECONDS);
    const rendered = renderWebhooks({ function_url: url, token });
    const expected = webhookConfigurations({ url, token });
    expect(rendered.mutating).toEqual(withoutTypeMeta(expected.mutating));
    expect(rendered.validating).toEqual(withoutTypeMeta(expected.validating));
  });

  it.each(
    OPT_MODES.flatMap((optMode, i) => {
      // Each pod opt mode with each VM opt mode, across the URL shapes.
      const podOptMode = OPT_MODES[(i + 1) % OPT_MODES.length]!;
      return [
        { name: `${optMode}, bare URL`, o: { url, token, optMode, podOptMode: optMode, timeoutSeconds: 10 } },
        {
          name: `${optMode}, pods ${podOptMode}, trailing slash, 5 s`,
          o: { url: `${url}/`, token, optMode, podOptMode, timeoutSeconds: 5 },
        },
        {
          name: `${optMode}, path prefix, 30 s`,
          o: { url: `${url}/base`, token, optMode, podOptMode, timeoutSeconds: 30 },
        },
      ];
    }),
  )('webhook HCL equals webhookConfigurations(): $name', ({ o }: { o: Required<WebhookOptions> }) => {
    const rendered = renderWebhooks({
      function_url: o.url,
      token: o.token,
      opt_mode: o.optMode,
      pod_opt_mode: o.podOptMode,
      timeout_seconds: o.timeoutSeconds,
    });
    const expected = webhookConfigurations(o);
    expect(expected.mutating.kind).toBe('MutatingWebhookConfiguration');
    expect(expected.validating.kind).toBe('ValidatingWebhookConfiguration');
    expect(rendered.mutating).toEqual(withoutTypeMeta(expected.mutating));
    expect(rendered.validating).toEqual(withoutTypeMeta(expected.validating));
  });

  it('declares no other webhook configurations', () => {
    const types = Object.keys(cluster.resources).filter((t) => t.includes('webhook'));
    expect(types.sort()).toEqual([
      'kubernetes_mutating_webhook_configuration_v1',
      'kubernetes_validating_webhook_configuration_v1',
    ]);
    for (const t of types) expect(Object.keys(cluster.resources[t] ?? {})).toEqual(['macpool']);
  });

  it('lets the reconcile job get and list VMs, pods and namespaces, nothing else', () => {
    const roles = Object.keys(cluster.resources).filter((t) => /^kubernetes_(cluster_)?role(_binding)?_v1$/.test(t));
    expect(roles.sort()).toEqual(['kubernetes_cluster_role_binding_v1', 'kubernetes_cluster_role_v1']);
    expect(blocks(resource(cluster, 'kubernetes_cluster_role_v1', 'reconcile').rule)).toEqual([
      { api_groups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'list'] },
      { api_groups: [''], resources: ['namespaces', 'pods'], verbs: ['get', 'list'] },
    ]);
    const binding = resource(cluster, 'kubernetes_cluster_role_binding_v1', 'reconcile');
    expect(one(binding.role_ref)).toEqual({
      api_group: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: '${kubernetes_cluster_role_v1.reconcile.metadata[0].name}',
    });
    expect(blocks(binding.subject)).toEqual([
      {
        kind: 'ServiceAccount',
        name: '${kubernetes_service_account_v1.reconcile.metadata[0].name}',
        namespace: '${kubernetes_service_account_v1.reconcile.metadata[0].namespace}',
      },
    ]);
  });

  it('runs reconcile on a schedule, one at a time, with the URL and its reconcile credential (a header) from its Secret', () => {
    const cron = resource(cluster, 'kubernetes_cron_job_v1', 'reconcile');
    const spec = one(cron.spec);
    expect(spec).toMatchObject({ schedule: '${var.schedule}', concurrency_policy: 'Forbid' });
    expect(cluster.variables.schedule?.default).toBe('*/5 * * * *');
    expect(cluster.variables.namespace?.default).toBe('macpool');
    const pod = one(one(one(one(spec.job_template).spec).template).spec);
    expect(pod.service_account_name).toBe('${kubernetes_service_account_v1.reconcile.metadata[0].name}');
    const container = one(pod.container);
    expect(container.image).toBe('${var.image}');
    expect(container.command).toEqual(['/bin/sh', '-c', '${local.reconcile_script}']);
    // The script itself runs in test/integration/cronjob.test.ts; here, what it is given.
    const script = String(cluster.locals.reconcile_script);
    expect(script.split('\n')[0]).toBe('set -eu');
    expect(script).toContain('-H "Authorization: Bearer $MACPOOL_RECONCILE_TOKEN"');
    expect(script).toContain('"$MACPOOL_URL/reconcile"');
    expect(blocks(container.env)).toContainEqual({
      name: 'MACPOOL_POD_FILTER',
      value: '${local.reconcile_pod_filter}',
    });
    expect(one(one(container.env_from).secret_ref).name).toBe('${kubernetes_secret_v1.macpool.metadata[0].name}');
    const secret = resource(cluster, 'kubernetes_secret_v1', 'macpool');
    expect(secret.data).toEqual({
      MACPOOL_URL: '${local.base_url}',
      MACPOOL_RECONCILE_TOKEN: '${local.credentials.reconcile}',
    });
    // S4: the Secret holds the reconcile credential as the function derives it, never the cluster secret.
    const scope = scopeFor(cluster, { function_url: 'https://macpool-abc123-uc.a.run.app/', token: 'ab'.repeat(16) });
    expect(evaluate(secret.data ?? null, scope)).toEqual({
      MACPOOL_URL: 'https://macpool-abc123-uc.a.run.app',
      MACPOOL_RECONCILE_TOKEN: roleCredential('ab'.repeat(16), 'reconcile'),
    });
    expect(one(resource(cluster, 'kubernetes_namespace_v1', 'macpool').metadata).name).toBe('${var.namespace}');
    expect(cluster.variables.token?.sensitive).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The provider schemas: test/fixtures/terraform-schema.json, extracted by scripts/terraform-schema.ts from the
// @cdktf provider packages (`npm run terraform-schema` regenerates it).

const SCHEMA = JSON.parse(
  readFileSync(join(TERRAFORM_DIR, '..', 'test', 'fixtures', 'terraform-schema.json'), 'utf8'),
) as SchemaFixture;

/** Meta-arguments Terraform itself takes in every resource, data source or provider block. */
const META: Record<'resource' | 'data' | 'provider', readonly string[]> = {
  resource: ['count', 'for_each', 'depends_on', 'provider', 'lifecycle', 'provisioner', 'connection'],
  data: ['count', 'for_each', 'depends_on', 'provider', 'lifecycle'],
  provider: ['alias'],
};

const isBlockList = (v: Json | undefined): v is Obj[] => Array.isArray(v) && v.every(isObj);

/**
 * What is wrong with a block body against its schema: unknown names, required ones missing, a block written as an
 * attribute or the other way round, a computed-only attribute set, a single block repeated. hcl2json writes
 * `x { ... }` and `x = [{ ... }]` alike, so an attribute that holds objects cannot be told from a block.
 */
function schemaProblems(body: Obj, schema: BlockSchema, where: string, meta: readonly string[] = []): string[] {
  const problems: string[] = [];
  const known = () => [...Object.keys(schema.attributes), ...Object.keys(schema.blocks)].sort().join(', ');
  const nested = (name: string, bodies: Obj[], block: NestedBlockSchema) => {
    if (block.nesting === 'single' && bodies.length > 1) {
      problems.push(`${where}.${name}: at most one ${name} block is allowed, found ${bodies.length}`);
    }
    bodies.forEach((b, i) => problems.push(...schemaProblems(b, block, `${where}.${name}[${i}]`)));
  };
  const dynamic = new Set<string>();
  for (const [name, value] of Object.entries(body)) {
    if (meta.includes(name)) continue;
    if (name === 'dynamic') {
      for (const [label, specs] of Object.entries(obj(value, `${where}.dynamic`))) {
        const block = schema.blocks[label];
        if (block === undefined) {
          problems.push(`${where}: dynamic "${label}" is not a block of this type; its blocks are ${known()}`);
          continue;
        }
        dynamic.add(label);
        for (const spec of blocks(specs)) nested(label, blocks(spec.content), block);
      }
      continue;
    }
    const attribute = schema.attributes[name];
    const block = schema.blocks[name];
    if (attribute !== undefined) {
      if (attribute.mode === 'computed') problems.push(`${where}.${name} is set by the provider and cannot be set`);
      else if (attribute.objects !== true && isBlockList(value) && value.length > 0) {
        problems.push(`${where}.${name} is an attribute: write ${name} = ..., not a ${name} { ... } block`);
      }
    } else if (block !== undefined) {
      if (!isBlockList(value)) problems.push(`${where}.${name} is a block: write ${name} { ... }, not ${name} = ...`);
      else nested(name, value, block);
    } else problems.push(`${where}: unknown argument or block "${name}"; this type has ${known()}`);
  }
  for (const [name, a] of Object.entries(schema.attributes)) {
    if (a.mode === 'required' && !(name in body)) problems.push(`${where}: required attribute ${name} is missing`);
  }
  for (const [name, b] of Object.entries(schema.blocks)) {
    if (b.required && !(name in body) && !dynamic.has(name)) {
      problems.push(`${where}: required block ${name} is missing`);
    }
  }
  const lifecycle = blocks(body.lifecycle)[0];
  const ignored = lifecycle?.ignore_changes;
  for (const ref of Array.isArray(ignored) ? ignored : []) {
    const first = /^\$\{([a-z0-9_]+)/.exec(String(ref))?.[1];
    if (first === undefined || (!(first in schema.attributes) && !(first in schema.blocks))) {
      problems.push(`${where}: lifecycle.ignore_changes names ${String(ref)}, which this type does not have`);
    }
  }
  return problems;
}

/** Whether a version satisfies a Terraform constraint such as ">= 6.0, < 8.0" (operators = != > >= < <= ~>). */
function satisfies(version: string, constraint: string): boolean {
  const parts = (v: string) => v.split('.').map(Number);
  const compare = (a: number[], b: number[]) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = (a[i] ?? 0) - (b[i] ?? 0);
      if (d !== 0) return Math.sign(d);
    }
    return 0;
  };
  const v = parts(version);
  return constraint.split(',').every((term) => {
    const m = /^\s*(=|!=|>=|>|<=|<|~>)?\s*(\d+(?:\.\d+)*)\s*$/.exec(term);
    if (m === null) throw new Error(`unsupported version constraint ${JSON.stringify(term)}`);
    const [, op = '=', bound = ''] = m;
    const b = parts(bound);
    const c = compare(v, b);
    switch (op) {
      case '=':
        return c === 0;
      case '!=':
        return c !== 0;
      case '>':
        return c > 0;
      case '>=':
        return c >= 0;
      case '<':
        return c < 0;
      case '<=':
        return c <= 0;
      default: {
        // ~> 1.2.3 allows >= 1.2.3, < 1.3; ~> 1.2 allows >= 1.2, < 2.
        const upper = b.length > 1 ? [...b.slice(0, -2), (b.at(-2) ?? 0) + 1] : [(b[0] ?? 0) + 1];
        return c >= 0 && compare(v, upper) < 0;
      }
    }
  });
}

const where = (m: TfModule) => relative(TERRAFORM_DIR, m.dir) || 'root';

describe('terraform against the provider schemas', () => {
  const typesUsed = (kind: 'resources' | 'data') => [...new Set(modules.flatMap((m) => Object.keys(m[kind])))].sort();

  it('has a schema for exactly the resource and data types the modules use (else run npm run terraform-schema)', () => {
    expect(Object.keys(SCHEMA.resources).sort()).toEqual(typesUsed('resources'));
    expect(Object.keys(SCHEMA.dataSources).sort()).toEqual(typesUsed('data'));
  });

  it.each(
    modules.flatMap((m) =>
      Object.entries(m.requiredProviders).map(([name, p]) => ({ name: `${where(m)}: ${name}`, provider: name, p })),
    ),
  )("$name: the schema's provider version is inside versions.tf's range", ({ provider, p }) => {
    const schema = SCHEMA.providers[provider];
    expect(schema, `no schema for provider ${provider}`).toBeDefined();
    expect(schema!.package).toMatch(new RegExp(`^@cdktf/provider-${provider}@\\d`));
    expect(satisfies(schema!.version, String(p.version)), `${schema!.version} against ${String(p.version)}`).toBe(true);
  });

  it.each(
    modules.flatMap((m) =>
      (['resources', 'data'] as const).flatMap((kind) =>
        Object.entries(m[kind]).flatMap(([type, byName]) =>
          Object.entries(byName).map(([name, body]) => ({
            name: `${where(m)}: ${kind === 'data' ? 'data.' : ''}${type}.${name}`,
            kind,
            type,
            body,
          })),
        ),
      ),
    ),
  )('$name matches its provider schema', ({ name, kind, type, body }) => {
    const schema = kind === 'data' ? SCHEMA.dataSources[type] : SCHEMA.resources[type];
    expect(schema, `no schema for ${type}`).toBeDefined();
    expect(schemaProblems(body, schema!, name, META[kind === 'data' ? 'data' : 'resource'])).toEqual([]);
  });

  it.each(
    modules.flatMap((m) =>
      Object.entries(m.providers).flatMap(([provider, configs]) =>
        configs.map((body, i) => ({ name: `${where(m)}: provider ${provider} #${i + 1}`, provider, body })),
      ),
    ),
  )('$name matches the provider configuration schema', ({ name, provider, body }) => {
    const schema = SCHEMA.providers[provider];
    expect(schema, `no schema for provider ${provider}`).toBeDefined();
    expect(schemaProblems(body, schema!.config, name, META.provider)).toEqual([]);
  });

  describe('the checker itself', () => {
    const webhook = SCHEMA.resources.kubernetes_mutating_webhook_configuration_v1!;
    const good = (): Obj =>
      structuredClone(resource(cluster, 'kubernetes_mutating_webhook_configuration_v1', 'macpool'));
    const check = (body: Obj) => schemaProblems(body, webhook, 'w', META.resource);
    it.each<{ name: string; change: (b: Obj) => void; problem: string }>([
      {
        name: 'an unknown attribute',
        change: (b) => (b.colour = 'blue'),
        problem: 'unknown argument or block "colour"',
      },
      {
        name: 'a missing required block',
        change: (b) => delete b.metadata,
        problem: 'required block metadata is missing',
      },
      {
        name: 'a missing required nested attribute',
        change: (b) => delete blocks(b.webhook)[0]!.name,
        problem: 'w.webhook[0]: required attribute name is missing',
      },
      {
        name: 'a block written as an attribute',
        change: (b) => (blocks(b.webhook)[0]!.client_config = { url: 'https://x' }),
        problem: 'w.webhook[0].client_config is a block',
      },
      {
        name: 'an attribute written as a block',
        change: (b) => (blocks(b.webhook)[0]!.failure_policy = [{ value: 'Fail' }]),
        problem: 'w.webhook[0].failure_policy is an attribute',
      },
      {
        name: 'a computed-only attribute set',
        change: (b) => (blocks(b.metadata)[0]!.uid = 'u'),
        problem: 'w.metadata[0].uid is set by the provider',
      },
      {
        name: 'a single block given twice',
        change: (b) => (b.metadata = [...blocks(b.metadata), ...blocks(b.metadata)]),
        problem: 'at most one metadata block',
      },
      {
        name: 'ignore_changes naming nothing',
        change: (b) => (b.lifecycle = [{ ignore_changes: ['${colour}'] }]),
        problem: 'lifecycle.ignore_changes names ${colour}',
      },
    ])('reports $name', ({ change, problem }) => {
      expect(check(good())).toEqual([]);
      const body = good();
      change(body);
      expect(check(body).join('\n')).toContain(problem);
    });

    it.each([
      { version: '6.50.0', constraint: '>= 6.0, < 8.0', ok: true },
      { version: '8.0.0', constraint: '>= 6.0, < 8.0', ok: false },
      { version: '5.9.9', constraint: '>= 6.0, < 8.0', ok: false },
      { version: '2.38.0', constraint: '>= 2.30, < 4.0', ok: true },
      { version: '2.7.1', constraint: '~> 2.2', ok: true },
      { version: '3.0.0', constraint: '~> 2.2', ok: false },
      { version: '2.2.9', constraint: '~> 2.2.3', ok: true },
      { version: '2.3.0', constraint: '~> 2.2.3', ok: false },
    ])('$version satisfies "$constraint": $ok', ({ version, constraint, ok }) => {
      expect(satisfies(version, constraint)).toBe(ok);
    });
  });
});

describe('terraform documentation', () => {
  const docs = (path: string) => readFileSync(join(TERRAFORM_DIR, path), 'utf8');
  it.each([
    { name: 'root', m: root, readme: 'README.md' },
    { name: 'cluster', m: cluster, readme: 'README.md' },
    { name: 'example', m: example, readme: 'examples/basic/README.md' },
  ])('the $name module README lists every input and output', ({ m, readme }) => {
    const text = docs(readme);
    for (const name of [...Object.keys(m.variables), ...Object.keys(m.outputs)])
      expect(text, name).toContain(`\`${name}\``);
  });
});

describe('terraform example', () => {
  it('applies the root module once and the cluster module once per cluster, each with its own provider', () => {
    expect(example.modules.macpool?.source).toBe('../..');
    const clusterModules = Object.entries(example.modules).filter(([, m]) => m.source === '../../modules/cluster');
    expect(clusterModules.length).toBeGreaterThanOrEqual(2);
    const aliases = (example.providers.kubernetes ?? []).map((p) => p.alias);
    for (const [name, m] of clusterModules) {
      expect(m.function_url, name).toBe('${module.macpool.function_url}');
      expect(m.token, name).toMatch(/^\$\{module\.macpool\.cluster_tokens\["[a-z0-9-]+"\]\}$/);
      const provider = /^\$\{kubernetes\.(\w+)\}$/.exec(String(obj(m.providers).kubernetes))?.[1];
      expect(aliases, name).toContain(provider);
    }
  });
});

describe.each(['mac_additional_ranges', 'mac_excluded_ranges'])('terraform %s validations (C6)', (name) => {
  const conditions = blocks(root.variables[name]?.validation).map((v) => String(v.condition));
  const STRING = '"((?:[^"\\\\]|\\\\.)*)"';
  const PER_ENTRY = new RegExp(
    `^\\$\\{alltrue\\(\\[for r in var\\.${name} : can\\(regex\\(${STRING}, r\\.start\\)\\) && ` +
      `can\\(regex\\(${STRING}, r\\.end\\)\\)\\]\\)\\}$`,
  );
  const ORDER = `\${alltrue([for r in var.${name} : try(parseint(replace(r.start, ":", ""), 16) <= parseint(replace(r.end, ":", ""), 16), true)])}`;
  const LENGTH = `\${length(var.${name}) <= ${MAX_LIST_ENTRIES}}`;

  /** The per-entry conditions as TypeScript predicates, the regexes taken from the HCL. */
  const checks = conditions
    .filter((c) => c !== LENGTH)
    .map((condition, i): ((r: { start: string; end: string }) => boolean) => {
      const perEntry = PER_ENTRY.exec(condition);
      if (perEntry) {
        const [startRe, endRe] = [new RegExp(hclUnescape(perEntry[1]!)), new RegExp(hclUnescape(perEntry[2]!))];
        return (r) => startRe.test(r.start) && endRe.test(r.end);
      }
      if (condition === ORDER) {
        const value = (mac: string) =>
          /^[0-9A-Fa-f]+$/.test(mac.replaceAll(':', '')) ? BigInt(`0x${mac.replaceAll(':', '')}`) : undefined;
        return (r) => {
          const [a, b] = [value(r.start), value(r.end)];
          return a === undefined || b === undefined || a <= b;
        };
      }
      throw new Error(`${name} validation ${i} has an unrecognised shape: ${condition}`);
    });

  it("has a length limit equal to the function's, then a format, a unicast and an order check, and defaults to []", () => {
    expect(conditions[0]).toBe(LENGTH);
    expect(checks).toHaveLength(3);
    expect(root.variables[name]?.default).toEqual([]);
  });

  it.each(RANGE_CASES)(
    '$name: the checks mac_range fails ($failing), and the function agrees',
    ({ start, end, failing }) => {
      const failed = checks.flatMap((check, i) => (check({ start, end }) ? [] : [i]));
      expect(failed).toEqual(failing);
      // Terraform accepts exactly what the function accepts, for the colon spelling Terraform takes (the function
      // also takes the dash and dotted spellings, which Terraform's format check refuses).
      if (failing.includes(0)) return;
      const list = name === 'mac_additional_ranges' ? 'additionalRanges' : 'excludedRanges';
      const pool = validatePool({
        rangeStart: '02:00:00:00:00:00',
        rangeEnd: '02:00:00:00:00:ff',
        [list]: [{ rangeStart: start, rangeEnd: end }],
      });
      expect(pool.ok).toBe(failing.length === 0);
    },
  );

  it('is written into the range document as a list of {rangeStart, rangeEnd} maps', () => {
    const list = name === 'mac_additional_ranges' ? 'additionalRanges' : 'excludedRanges';
    const doc = resource(root, 'google_firestore_document', 'range');
    expect(String(doc.fields).replace(/ +/g, ' ')).toContain(
      `${list} = { arrayValue = { values = [for r in var.${name} : { mapValue = { fields = { rangeStart = { stringValue = r.start }, rangeEnd = { stringValue = r.end } } } }] } }`,
    );
  });
});
