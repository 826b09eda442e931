import t from 'tap';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MDM_URL_DEFAULT, configDir, credentialsPath, readCredentials, resolveMdmUrl, writeCredentials } from '../../src/cli/session.js';
import { tempDir } from '../helpers/proc.js';

t.test('config dir: PFLEX_CONFIG_DIR, then XDG_CONFIG_HOME/pflex, then ~/.config/pflex', async (t) => {
  t.equal(configDir({ PFLEX_CONFIG_DIR: '/a', XDG_CONFIG_HOME: '/b' }), '/a');
  t.equal(configDir({ XDG_CONFIG_HOME: '/b' }), '/b/pflex');
  t.match(configDir({}), /\/\.config\/pflex$/);
});

t.test('credentials are written 0600, also over an old world-readable file', async (t) => {
  const dir = join(tempDir(t), 'cfg');
  const env = { PFLEX_CONFIG_DIR: dir };
  mkdirSync(dir, { recursive: true });
  writeFileSync(credentialsPath(env), '{}');
  chmodSync(credentialsPath(env), 0o644);
  writeCredentials({ mdmUrl: 'http://mdm1:8001', user: 'admin', token: 'tok' }, env);
  t.equal(statSync(credentialsPath(env)).mode & 0o777, 0o600);
  t.same(readdirSync(dir), ['credentials.json'], 'no temp file left behind');
  t.match(readCredentials(env), { mdmUrl: 'http://mdm1:8001', token: 'tok' });
  const fresh = { PFLEX_CONFIG_DIR: join(tempDir(t), 'new', 'pflex') };
  writeCredentials({ mdmUrl: 'http://x', user: 'u', token: 't' }, fresh);
  t.equal(statSync(configDir(fresh)).mode & 0o777, 0o700, 'a new config dir is 0700');
  writeFileSync(credentialsPath(fresh), 'not json');
  t.equal(readCredentials(fresh), null, 'a corrupt file reads as logged out');
});

t.test('MDM URL: --mdm, then PFLEX_MDM_URL, then the login, then the default', async (t) => {
  const dir = join(tempDir(t), 'cfg');
  t.equal(resolveMdmUrl(undefined, { PFLEX_CONFIG_DIR: dir }), MDM_URL_DEFAULT);
  writeCredentials({ mdmUrl: 'http://saved:8001', user: 'u', token: 't' }, { PFLEX_CONFIG_DIR: dir });
  t.equal(resolveMdmUrl(undefined, { PFLEX_CONFIG_DIR: dir }), 'http://saved:8001');
  t.equal(resolveMdmUrl(undefined, { PFLEX_CONFIG_DIR: dir, PFLEX_MDM_URL: 'http://env:1/' }), 'http://env:1');
  t.equal(resolveMdmUrl('http://flag:2', { PFLEX_CONFIG_DIR: dir, PFLEX_MDM_URL: 'http://env:1' }), 'http://flag:2');
  t.throws(() => resolveMdmUrl('mdm1', {}), { code: 'PFLEX_ERR_BAD_REQUEST', message: /not a URL/ });
});
