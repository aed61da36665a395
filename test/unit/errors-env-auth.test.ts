import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerToken, Credentials, presentedCredential, splitTokenPath } from '../../functions/auth.js';
import { ROLES, roleCredential } from '../../shared/credentials.js';
import { type DomainError, errorHttpCode, errorMessage } from '../../shared/errors.js';
import { EnvError, parseEnv, parseTokens } from '../../shared/env.js';

describe('denial messages and codes', () => {
  it.each<{ error: DomainError; code: number; message: string }>([
    {
      error: { code: 'invalid-mac', interface: 'eth1', value: 'x' },
      code: 422,
      message: 'invalid MAC address format for interface eth1: x',
    },
    {
      error: { code: 'multicast-mac', interface: 'eth1', value: '01:00:00:00:00:00' },
      code: 422,
      message: 'is a multicast address',
    },
    {
      error: { code: 'duplicate-mac', mac: '02:00:00:00:00:01', first: 'a', second: 'b' },
      code: 422,
      message: 'duplicate MAC address 02:00:00:00:00:01 found on interfaces: a and b',
    },
    {
      error: { code: 'duplicate-interface-name', interface: 'a' },
      code: 422,
      message: 'every interface must have a unique name',
    },
    {
      error: { code: 'mac-in-use', interface: 'a', mac: '02:00:00:00:00:01' },
      code: 409,
      message: 'MAC address 02:00:00:00:00:01 requested for interface a is already in use',
    },
    {
      error: { code: 'mac-in-use', interface: 'a', mac: '02:00:00:00:00:01', holder: 'vm1' },
      code: 409,
      message: 'is already in use by virtual machine vm1',
    },
    {
      error: { code: 'range-full', range: '02:00:00:00:00:00-02:00:00:00:00:ff', coolingDown: 0 },
      code: 403,
      message: 'the range is full: no free MAC left in 02:00:00:00:00:00-02:00:00:00:00:ff',
    },
    {
      error: { code: 'invalid-object', path: 'spec', problem: 'bad' },
      code: 422,
      message: 'invalid VirtualMachine: spec: bad',
    },
    {
      error: { code: 'no-valid-config', reason: 'r' },
      code: 500,
      message: 'fix the Firestore document config/kubeMacPoolConfiguration',
    },
    { error: { code: 'contention', attempts: 3 }, code: 409, message: 'retry the request' },
    { error: { code: 'unavailable', reason: 'timeout' }, code: 503, message: 'MAC pool unavailable: timeout' },
  ])('$error.code -> $code', ({ error, code, message }) => {
    expect(errorHttpCode(error)).toBe(code);
    expect(errorMessage(error)).toContain(message);
  });
});

describe('parseEnv', () => {
  it('defaults', () => {
    expect(parseEnv({ FIRESTORE_EMULATOR_HOST: '127.0.0.1:8080' })).toEqual({
      port: 8080,
      emulatorHost: '127.0.0.1:8080',
      projectId: undefined,
      tokens: [],
    });
  });
  it('tokens, with several per cluster for rotation', () => {
    expect(parseTokens('a=0123456789abcdef, a=fedcba9876543210 ,b-2=__________________')).toEqual([
      { cluster: 'a', token: '0123456789abcdef' },
      { cluster: 'a', token: 'fedcba9876543210' },
      { cluster: 'b-2', token: '__________________' },
    ]);
  });
  it.each([
    {
      name: 'no tokens against real Firestore',
      env: { GOOGLE_CLOUD_PROJECT: 'p' },
      message: 'MACPOOL_TOKENS is not set',
    },
    {
      name: 'a bad port',
      env: { PORT: 'eighty', FIRESTORE_EMULATOR_HOST: 'h:1' },
      message: 'PORT must be a port number',
    },
    {
      name: 'a port out of range',
      env: { PORT: '70000', FIRESTORE_EMULATOR_HOST: 'h:1' },
      message: 'between 1 and 65535',
    },
    { name: 'a bad emulator host', env: { FIRESTORE_EMULATOR_HOST: 'http://h' }, message: 'must be HOST:PORT' },
    { name: 'an entry without =', env: { MACPOOL_TOKENS: 'abc' }, message: 'each entry must be CLUSTER=TOKEN' },
    {
      name: 'a reused token',
      env: { MACPOOL_TOKENS: 'a=0123456789abcdef,b=0123456789abcdef' },
      message: 'the same token appears twice',
    },
    {
      name: 'a token with a slash',
      env: { MACPOOL_TOKENS: 'a=0123456789/abcdef' },
      message: 'the token is not allowed',
    },
    { name: 'only commas', env: { MACPOOL_TOKENS: ',,' }, message: 'lists no CLUSTER=TOKEN entry' },
  ])('refuses $name', ({ env, message }) => {
    expect(() => parseEnv(env)).toThrow(EnvError);
    expect(() => parseEnv(env)).toThrow(message);
  });
  it('refuses a role credential listed as a secret: it would hold every role', () => {
    const secret = '0123456789abcdef0123';
    for (const role of ROLES) {
      const env = { MACPOOL_TOKENS: `a=${secret},b=${roleCredential(secret, role)}` };
      expect(() => parseEnv(env)).toThrow(`is the ${role} credential derived from a token of cluster a`);
      expect(() => parseEnv(env)).toThrow(expect.objectContaining({ message: expect.not.stringContaining(secret) }));
    }
  });
  it('never echoes a token in its errors', () => {
    expect(() => parseEnv({ MACPOOL_TOKENS: 'a=secret/secret/secret' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('secret/') }),
    );
  });
});

describe('auth', () => {
  const tokens = [
    { cluster: 'a', token: 'aaaaaaaaaaaaaaaa' },
    { cluster: 'b', token: 'bbbbbbbbbbbbbbbb' },
    { cluster: 'a', token: 'cccccccccccccccc' },
  ];
  it.each([
    { presented: 'aaaaaaaaaaaaaaaa', cluster: 'a' },
    { presented: 'bbbbbbbbbbbbbbbb', cluster: 'b' },
    { presented: 'cccccccccccccccc', cluster: 'a' },
    { presented: 'aaaaaaaaaaaaaaa', cluster: undefined },
    { presented: 'aaaaaaaaaaaaaaaaa', cluster: undefined },
    { presented: '', cluster: undefined },
    { presented: undefined, cluster: undefined },
  ])('token $presented -> cluster $cluster', ({ presented, cluster }) => {
    expect(new Credentials(tokens).identify(presented)?.cluster).toBe(cluster);
  });
  it.each([
    { path: '/t/abc/mutate-virtualmachines', token: 'abc', rest: '/mutate-virtualmachines' },
    { path: '/t/abc', token: 'abc', rest: '/' },
    { path: '/mutate-virtualmachines', token: undefined, rest: '/mutate-virtualmachines' },
    { path: '/t//x', token: '', rest: '/x' },
    { path: '/t/a%2Fb/x', token: 'a/b', rest: '/x' },
    // Not valid percent-encoding: an empty token, which no credential matches, instead of a URIError (F3).
    { path: '/t/%zz/x', token: '', rest: '/x' },
  ])('splitTokenPath($path)', ({ path, token, rest }) => {
    expect(splitTokenPath(path)).toEqual({ token, path: rest });
  });
  it('bearerToken', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('role credentials (S4)', () => {
  const secret = '0123456789abcdef0123456789abcdef';
  it('are hex(sha256("macpool:v1:<role>:<secret>")), as Terraform and sha256sum compute them', () => {
    // Pinned: a change to the derivation would orphan every webhook URL already registered in a cluster.
    expect(roleCredential(secret, 'vm')).toBe(createHash('sha256').update(`macpool:v1:vm:${secret}`).digest('hex'));
    expect(roleCredential('abcdefghijklmnop', 'reconcile')).toBe(
      'faea3c4f714b654f9177e494964f40c8e4f2d4672bc61bce71048697d89b59b5',
    );
  });
  it('differ by role and by secret, and match the token pattern', () => {
    const all = ROLES.flatMap((role) => [roleCredential(secret, role), roleCredential(`${secret}x`, role)]);
    expect(new Set(all).size).toBe(all.length);
    for (const c of all) expect(c).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('authorization by role and source (S4)', () => {
  const secret = 'aaaaaaaaaaaaaaaa';
  const rotated = 'cccccccccccccccc';
  const credentials = new Credentials([
    { cluster: 'a', token: secret },
    { cluster: 'a', token: rotated },
    { cluster: 'b', token: 'bbbbbbbbbbbbbbbb' },
  ]);
  const check = (value: string, source: 'path' | 'bearer', role: (typeof ROLES)[number], from: ('path' | 'bearer')[]) =>
    credentials.authorize(credentials.identify(value), source, { role, from });
  const both: ('path' | 'bearer')[] = ['path', 'bearer'];

  it.each(ROLES.flatMap((role) => [secret, rotated].map((s) => ({ role, s }))))(
    'the $role credential of secret $s acts for its cluster in its role, from the path or a header',
    ({ role, s }) => {
      expect(check(roleCredential(s, role), 'path', role, both)).toBe('a');
      expect(check(roleCredential(s, role), 'bearer', role, both)).toBe('a');
    },
  );
  it.each(ROLES.flatMap((held) => ROLES.filter((r) => r !== held).map((need) => ({ held, need }))))(
    'the $held credential does not act as $need',
    ({ held, need }) => {
      expect(check(roleCredential(secret, held), 'path', need, both)).toBeUndefined();
      expect(check(roleCredential(secret, held), 'bearer', need, both)).toBeUndefined();
    },
  );
  it('a role confined to the header refuses its own credential in the path', () => {
    expect(check(roleCredential(secret, 'reconcile'), 'path', 'reconcile', ['bearer'])).toBeUndefined();
    expect(check(roleCredential(secret, 'reconcile'), 'bearer', 'reconcile', ['bearer'])).toBe('a');
  });
  it.each(ROLES)('the cluster secret holds %s as a Bearer header, never in the path', (role) => {
    expect(check(secret, 'bearer', role, both)).toBe('a');
    expect(check(rotated, 'bearer', role, ['bearer'])).toBe('a');
    expect(check(secret, 'path', role, both)).toBeUndefined();
  });
  it('a credential of another cluster acts for that cluster only', () => {
    expect(check(roleCredential('bbbbbbbbbbbbbbbb', 'vm'), 'path', 'vm', both)).toBe('b');
  });
  it('without configured secrets (emulator development) every request acts for cluster default', () => {
    const open = new Credentials([]);
    expect(open.authorize(undefined, undefined, { role: 'reconcile', from: ['bearer'] })).toBe('default');
  });
  it('presentedCredential takes the path first, else the Bearer header', () => {
    expect(presentedCredential('p', 'Bearer h')).toEqual({ value: 'p', source: 'path' });
    expect(presentedCredential(undefined, 'Bearer h')).toEqual({ value: 'h', source: 'bearer' });
    expect(presentedCredential(undefined, 'Basic h')).toBeUndefined();
  });
});
