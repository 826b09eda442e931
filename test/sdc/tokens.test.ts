/**
 * The SDC's cached IO token of one volume: fetched once and reused, and
 * dropped by forget() (a mapping's access changed) so that the next IO asks
 * the MDM again; a fetch already under way when forget() is called is asked
 * again, so its answer (possibly the old rights) is never kept.
 */
import t from 'tap';
import { pino } from 'pino';
import type { IoRights } from '../../src/shared/iotoken.js';
import type { MdmClient } from '../../src/shared/mdm-client.js';
import { VolumeToken } from '../../src/sdc/tokens.js';

const log = pino({ level: 'silent' });

/** An MDM whose token answers the test releases one at a time, with the rights it sets. */
function slowMdm() {
  const asked: Array<(rights: IoRights) => void> = [];
  const mdm = {
    issueIoToken: (_sdc: number, volumeId: number) => new Promise((resolve) => {
      asked.push((rights) => resolve({ token: '', sdcId: 1, volumeId, rights, expiresAtMs: Date.now() + 300_000, bytes: Buffer.from(rights) }));
    }),
  } as unknown as MdmClient;
  return { mdm, asked };
}

/** Waits for what the token does next (no timers involved: a few turns of the event loop). */
const until = async (ok: () => boolean, what: string) => {
  for (let i = 0; !ok(); i++) {
    if (i > 1000) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
};

t.test('a cached token is reused until forget()', async (t) => {
  const { mdm, asked } = slowMdm();
  const token = new VolumeToken(mdm, () => 1, 5, log);
  const first = token.get();
  await until(() => asked.length === 1, 'a call to the MDM');
  asked[0]!('rw');
  t.equal((await first).toString(), 'rw', 'fetched from the MDM');
  t.equal(token.get().toString(), 'rw', 'then answered from the cache');
  t.equal(asked.length, 1, 'without another call');
  token.forget();
  t.equal(token.rights, undefined, 'forget() drops the rights');
  const next = token.get();
  await until(() => asked.length === 2, 'a second call to the MDM');
  asked[1]!('ro');
  t.equal((await next).toString(), 'ro', 'the next IO fetches the new rights');
  t.equal(token.rights, 'ro');
});

t.test('a fetch under way at forget() is asked again', async (t) => {
  const { mdm, asked } = slowMdm();
  const token = new VolumeToken(mdm, () => 1, 5, log);
  const pending = token.get();
  await until(() => asked.length === 1, 'a call to the MDM');
  token.forget();
  asked[0]!('rw'); // answered under the old access
  await until(() => asked.length === 2, 'a second call to the MDM');
  asked[1]!('ro');
  t.equal((await pending).toString(), 'ro', 'the caller gets the token asked after the change');
  t.equal(token.rights, 'ro', 'and the old rights were not kept');
  t.equal(token.get().toString(), 'ro', 'the cache holds the new token');
  t.equal(asked.length, 2, 'two calls in all');
});
