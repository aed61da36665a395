import { describe, expect, it } from 'vitest';
import { bearerToken, clusterForToken, splitTokenPath } from '../../functions/auth.js';
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
    expect(clusterForToken(tokens, presented)).toBe(cluster);
  });
  it.each([
    { path: '/t/abc/mutate-virtualmachines', token: 'abc', rest: '/mutate-virtualmachines' },
    { path: '/t/abc', token: 'abc', rest: '/' },
    { path: '/mutate-virtualmachines', token: undefined, rest: '/mutate-virtualmachines' },
    { path: '/t//x', token: '', rest: '/x' },
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
