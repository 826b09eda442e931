/**
 * Prometheus metrics of a live cluster (MDM, three SDS and an SDC as
 * processes, IO through real NBD clients): every /metrics refuses a scrape
 * without the scrape token; the counters move by what was written and read,
 * on the SDC per volume and on exactly the SDSs that hold the copies; the MDM
 * shows component states, heartbeat ages and PG states, and after a SIGKILL
 * the SDS DOWN and its PGs degraded, then rebuilt. The Grafana dashboard
 * only queries metrics that the cluster exports.
 */
import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pgOfChunk } from '../../src/shared/pg.js';
import { metricsScrapeToken } from '../../src/shared/scrape-auth.js';
import { MdmClient } from '../../src/shared/mdm-client.js';
import { missingClients } from '../helpers/nbd.js';
import { PFLEX_BIN, ROOT, tempDir } from '../helpers/proc.js';
import { startCluster } from '../sdc/cluster.js';
import { parsePromText, seriesOf, sumOf, type Scrape } from './prom-text.js';

const skip = missingClients('nbdsh', 'nbdcopy');
const MiB = 1024 * 1024;
const PG_COUNT = 16;

/** nbdsh needs the system python3 (python3-libnbd), not another one first on PATH. */
const ENV = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` };

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000, env: ENV }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${err.message}\n${stdout}${stderr}`)) : resolve()));
  });
}

async function scrape(url: string, authorization: string | undefined): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(url, { headers: authorization ? { authorization } : {} });
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

async function scrapeOk(t: Test, url: string, authorization: string): Promise<Scrape> {
  const r = await scrape(url, authorization);
  if (r.status !== 200) t.fail(`${url}: ${r.status} ${r.text}`);
  return parsePromText(r.text);
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every histogram series: cumulative buckets never decrease and +Inf equals _count. */
function checkHistogram(t: Test, s: Scrape, family: string, match: Record<string, string>): void {
  const buckets = seriesOf(s, `${family}_bucket`, match);
  t.ok(buckets.length > 0, `${family} has buckets for ${JSON.stringify(match)}`);
  const les = buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
  const sorted = buckets.map((b, i) => ({ le: les[i]!, v: b.value })).sort((a, b) => a.le - b.le);
  t.ok(sorted.every((b, i) => i === 0 || b.v >= sorted[i - 1]!.v), `${family} buckets are cumulative`);
  t.equal(sorted[sorted.length - 1]!.le, Infinity, `${family} has a +Inf bucket`);
  t.equal(sorted[sorted.length - 1]!.v, sumOf(s, `${family}_count`, match), `${family}: +Inf bucket = count`);
}

t.test('Prometheus metrics of a live cluster', { skip }, async (t) => {
  // A slow rebuild, so that the degraded PGs stay visible for a while after the SIGKILL.
  const c = await startCluster(t, { pgCount: PG_COUNT, mdmConfig: { rebuildBandwidthBytesPerS: 2 * MiB } });
  const vol = await c.volume('vol1', 32 * MiB);
  const dir = tempDir(t, 'pflex-metrics-');
  const token = execFileSync(process.execPath, [PFLEX_BIN, 'metrics', 'token', '--data-dir', c.mdm.dataDir], { encoding: 'utf8' }).trim();
  t.equal(token, metricsScrapeToken(c.mdm.clusterKey), '`pflex metrics token` prints the scrape token');
  const auth = `Bearer ${token}`;
  const mdmUrl = `${c.mdm.url}/metrics`;
  const sdcUrl = `http://127.0.0.1:${c.sdc.mgmtPort}/metrics`;
  const sdsUrl = (i: number): string => `http://127.0.0.1:${c.sds[i]!.mgmtPort}/metrics`;
  const allUrls = [mdmUrl, sdcUrl, ...c.sds.map((_, i) => sdsUrl(i))];

  await t.test('no scrape without the token', async (t) => {
    const adminJwt = `Bearer ${c.mdm.admin.bearerToken!}`;
    for (const url of allUrls) {
      for (const header of [undefined, 'Bearer 00', `Bearer ${metricsScrapeToken(randomBytes(32))}`, token]) {
        const r = await scrape(url, header);
        t.equal(r.status, 401, `${url} with ${header === undefined ? 'no' : 'a wrong'} Authorization: 401`);
        t.notMatch(r.text, /pflex_/, 'and no metrics');
      }
    }
    for (const url of allUrls.slice(1)) t.equal((await scrape(url, adminJwt)).status, 401, `${url}: a user token is not the scrape token`);
    t.equal((await scrape(mdmUrl, adminJwt)).status, 200, 'the MDM also serves an admin');
    await c.mdm.admin.createUser('watcher', 'watcher-password', 'monitor');
    const monitor = new MdmClient({ url: c.mdm.url });
    await monitor.login('watcher', 'watcher-password');
    t.equal((await scrape(mdmUrl, `Bearer ${monitor.bearerToken!}`)).status, 200, 'and a monitor');
    for (const url of allUrls) {
      const r = await scrape(url, auth);
      t.equal(r.status, 200, `${url} with the scrape token`);
      t.match(r.contentType ?? '', /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
    }
  });

  const map = await c.mdm.admin.getPgMap(c.poolId);
  const members = map.pgs.find((p) => p.pg === pgOfChunk(vol.volumeTreeId, 0, map.pgCount))!.members;
  const holders = c.sds.filter((s) => members.includes(s.id));
  const others = c.sds.filter((s) => !members.includes(s.id));
  t.equal(holders.length, 2, 'chunk 0 has two copies');

  await t.test('one chunk written: counted by the SDC and by exactly its two SDSs', async (t) => {
    await run('nbdsh', ['-u', c.sdc.uri('vol1'), '-c', `h.pwrite(b"\\xab" * ${MiB}, 0)`, '-c', 'h.flush()']);
    const sdc = await scrapeOk(t, sdcUrl, auth);
    t.equal(sumOf(sdc, 'pflex_sdc_io_bytes_total', { volume: 'vol1', op: 'write' }), MiB, 'SDC: 1 MiB written to vol1');
    t.equal(sumOf(sdc, 'pflex_sdc_io_ops_total', { volume: 'vol1', op: 'write' }), 1, 'SDC: one write request');
    t.ok(sumOf(sdc, 'pflex_sdc_io_ops_total', { volume: 'vol1', op: 'flush' }) >= 1, 'SDC: the flush counted');
    t.equal(sumOf(sdc, 'pflex_sdc_io_errors_total', { volume: 'vol1' }), 0, 'SDC: no errors');
    for (const s of c.sds) {
      const m = await scrapeOk(t, sdsUrl(c.sds.indexOf(s)), auth);
      const bytes = sumOf(m, 'pflex_sds_bytes_total', { sds: s.name, op: 'write' });
      if (holders.includes(s)) t.ok(bytes >= MiB, `${s.name} holds a copy: ${bytes} bytes written`);
      else t.equal(sumOf(m, 'pflex_sds_ops_total', { sds: s.name, op: 'write' }), 0, `${s.name} holds no copy: no write`);
    }
    const sds = await Promise.all(c.sds.map((_, i) => scrapeOk(t, sdsUrl(i), auth)));
    t.equal(sds.reduce((a, m) => a + sumOf(m, 'pflex_sds_forwards_total'), 0) >= 1, true, 'the primary forwarded the write');
    t.equal(others.length, 1);
  });

  await t.test('8 MiB through nbdcopy both ways: volume counters and latency histograms', async (t) => {
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    writeFileSync(src, randomBytes(8 * MiB));
    await run('nbdcopy', [src, c.sdc.uri('vol1')]);
    await run('nbdcopy', [c.sdc.uri('vol1'), back]);
    t.ok(readFileSync(back).subarray(0, 8 * MiB).equals(readFileSync(src)), 'read back what was written');
    const sdc = await scrapeOk(t, sdcUrl, auth);
    t.ok(sumOf(sdc, 'pflex_sdc_io_bytes_total', { volume: 'vol1', op: 'write' }) >= 9 * MiB, 'SDC: at least 9 MiB written to vol1');
    // nbdcopy skips what BLOCK_STATUS calls holes: at least the written 8 MiB were read.
    t.ok(sumOf(sdc, 'pflex_sdc_io_bytes_total', { volume: 'vol1', op: 'read' }) >= 8 * MiB, 'SDC: what was written read back');
    for (const op of ['read', 'write']) {
      checkHistogram(t, sdc, 'pflex_sdc_io_latency_seconds', { volume: 'vol1', op });
      t.equal(sumOf(sdc, 'pflex_sdc_io_latency_seconds_count', { volume: 'vol1', op }), sumOf(sdc, 'pflex_sdc_io_ops_total', { volume: 'vol1', op }), `SDC ${op}: one latency per request`);
      t.ok(sumOf(sdc, 'pflex_sdc_io_latency_seconds_sum', { volume: 'vol1', op }) > 0, `SDC ${op}: latency sum`);
    }
    const sds = await Promise.all(c.sds.map((_, i) => scrapeOk(t, sdsUrl(i), auth)));
    const written = sds.reduce((a, m) => a + sumOf(m, 'pflex_sds_bytes_total', { op: 'write' }), 0);
    t.ok(written >= 2 * 9 * MiB, `SDSs: two copies of every byte written (${written})`);
    const primaries = sds.filter((m) => sumOf(m, 'pflex_sds_ops_total', { op: 'read' }) > 0).length;
    t.ok(primaries >= 2, `reads served by several primaries (${primaries})`);
    for (const [i, m] of sds.entries()) {
      if (sumOf(m, 'pflex_sds_ops_total', { op: 'write' }) > 0) checkHistogram(t, m, 'pflex_sds_op_latency_seconds', { sds: c.sds[i]!.name, op: 'write' });
      t.ok(sumOf(m, 'pflex_sds_chunks_stored') > 0, `${c.sds[i]!.name} stores chunks`);
      t.equal(sumOf(m, 'pflex_sds_stored_bytes'), sumOf(m, 'pflex_sds_chunks_stored') * MiB, `${c.sds[i]!.name}: whole chunks stored`);
      t.equal(sumOf(m, 'pflex_sds_registered'), 1);
      t.equal(sumOf(m, 'pflex_sds_map_epoch'), map.epoch, 'map epoch');
    }
    t.equal(sds.reduce((a, m) => a + sumOf(m, 'pflex_sds_pgs', { role: 'primary' }), 0), PG_COUNT, 'every PG has one primary');
  });

  await t.test('the MDM: components, heartbeat ages, PG states, pools, volumes', async (t) => {
    const m = await scrapeOk(t, mdmUrl, auth);
    for (const s of c.sds) t.equal(sumOf(m, 'pflex_mdm_component_state', { kind: 'sds', name: s.name, state: 'ACTIVE' }), 1, `${s.name} ACTIVE`);
    t.equal(sumOf(m, 'pflex_mdm_component_state', { kind: 'sdc', name: 'sdc1', state: 'ACTIVE' }), 1, 'sdc1 ACTIVE');
    t.equal(sumOf(m, 'pflex_mdm_components', { kind: 'sds', state: 'ACTIVE' }), 3);
    const ages = seriesOf(m, 'pflex_mdm_heartbeat_age_seconds');
    t.same(ages.map((a) => `${a.labels.kind}/${a.labels.name}`).sort(), ['sdc/sdc1', 'sds/sds1', 'sds/sds2', 'sds/sds3'], 'a heartbeat age per component');
    t.ok(ages.every((a) => a.value >= 0 && Number.isFinite(a.value)), 'ages are seconds');
    t.equal(sumOf(m, 'pflex_mdm_pgs', { pool: 'pool1', state: 'active' }), PG_COUNT, 'every PG active');
    t.equal(sumOf(m, 'pflex_mdm_pgs_degraded', { pool: 'pool1' }), 0);
    t.equal(sumOf(m, 'pflex_mdm_volumes', { pool: 'pool1' }), 1);
    t.equal(sumOf(m, 'pflex_mdm_volume_size_bytes', { volume: 'vol1' }), 32 * MiB);
    t.ok(sumOf(m, 'pflex_mdm_pool_total_bytes', { pool: 'pool1' }) > 0, 'pool capacity');
    t.equal(seriesOf(m, 'pflex_mdm_alerts_open').length, 4, 'open alerts by severity');
    t.ok(seriesOf(m, 'process_cpu_seconds_total').length === 1, 'process metrics too');
  });

  await t.test('the Grafana dashboard queries only exported metrics', async (t) => {
    const dash = JSON.parse(readFileSync(join(ROOT, 'monitoring/grafana/pflex-dashboard.json'), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>; templating: { list: Array<{ definition?: string }> };
    };
    const exprs = [...dash.panels.flatMap((p) => (p.targets ?? []).map((q) => q.expr)), ...dash.templating.list.flatMap((v) => (v.definition ? [v.definition] : []))];
    t.ok(exprs.length >= 20, `${exprs.length} queries`);
    const scraped = await Promise.all(allUrls.map((u) => scrapeOk(t, u, auth)));
    const exported = new Set(scraped.flatMap((s) => s.samples.map((x) => x.name)));
    const referenced = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(pflex_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g)].map((m) => m[1]!)));
    t.ok(referenced.size >= 20, `${referenced.size} metrics referenced`);
    for (const name of referenced) t.ok(exported.has(name), `${name} is exported`);
  });

  await t.test('SIGKILL of an SDS: DOWN, degraded PGs, then rebuilt', async (t) => {
    const victim = holders[1]!;
    const survivors = c.sds.filter((s) => s !== victim);
    victim.proc.child.kill('SIGKILL');
    const seen = await until('the MDM to show the SDS DOWN and degraded PGs', async () => {
      const m = parsePromText((await scrape(mdmUrl, auth)).text);
      const down = sumOf(m, 'pflex_mdm_component_state', { kind: 'sds', name: victim.name, state: 'DOWN' });
      const degraded = sumOf(m, 'pflex_mdm_pgs_degraded', { pool: 'pool1' });
      return down === 1 && degraded > 0 ? m : undefined;
    });
    t.pass(`${victim.name} DOWN, ${sumOf(seen, 'pflex_mdm_pgs_degraded')} PGs degraded`);
    t.ok(sumOf(seen, 'pflex_mdm_heartbeat_age_seconds', { kind: 'sds', name: victim.name }) >= 5, 'its heartbeat age passed the DOWN threshold (5 s)');
    t.equal(sumOf(seen, 'pflex_mdm_components', { kind: 'sds', state: 'DOWN' }), 1);
    t.ok(sumOf(seen, 'pflex_mdm_pgs', { pool: 'pool1', state: 'degraded' }) + sumOf(seen, 'pflex_mdm_pgs', { pool: 'pool1', state: 'rebuilding' }) > 0, 'PG states show it');
    await until('the rebuild to finish', async () => {
      const m = parsePromText((await scrape(mdmUrl, auth)).text);
      return sumOf(m, 'pflex_mdm_pgs', { pool: 'pool1', state: 'active' }) === PG_COUNT ? m : undefined;
    }, 120_000);
    const pushed = (await Promise.all(survivors.map((s) => scrapeOk(t, sdsUrl(c.sds.indexOf(s)), auth)))).reduce((a, m) => a + sumOf(m, 'pflex_sds_rebuild_bytes_pushed_total'), 0);
    t.ok(pushed >= MiB, `the survivors pushed ${pushed} rebuild bytes`);
  });
});
