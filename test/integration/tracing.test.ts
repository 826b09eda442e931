/**
 * OpenTelemetry across processes (docs/observability.md): a real cluster
 * (MDM, three SDS, SDCs as processes) exports OTLP/HTTP to a receiver in
 * this test. One NBD write (nbdsh) must give one trace: the SDC's request
 * span as root, the MDM call it made for its first IO token (client span in
 * the SDC, server span in the MDM under it), the primary SDS's server span
 * under the root, its forward to the secondary under that, and the
 * secondary's server span under the forward; pino lines of the request carry
 * its trace_id/span_id. SDCs whose collector is dead (nothing listening) or
 * stuck (never answers) still complete and verify their IO, and drop spans.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { missingClients } from '../helpers/nbd.js';
import { listenerJson } from '../helpers/listener.js';
import { freePort } from '../helpers/proc.js';
import { KIND, startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { startCluster, startSdcProc, type SdcProc } from '../sdc/cluster.js';
import type { Mdm } from '../sds/cluster.js';
import type { TracingStats } from '../../src/shared/tracing.js';

const skip = missingClients('nbdsh');
const MiB = 1024 * 1024;

function nbdsh(uri: string, script: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    // nbdsh runs `python3`: Debian's has the nbd module, another one first on PATH may not.
    const env = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` };
    execFile('nbdsh', ['-u', uri, '-c', script], { encoding: 'utf8', timeout: 120_000, env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

async function waitForStats(mdm: Mdm, sdc: SdcProc, pred: (s: TracingStats) => boolean, timeoutMs = 30_000): Promise<TracingStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await listenerJson<{ tracing: TracingStats }>(mdm, sdc.mgmtPort, '/stats')).tracing;
    if (pred(s) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** N 4 KiB writes of a pattern, then every block read back and compared (exit 0 only if all match). */
function writeAndVerify(n: number): string {
  return [
    'buf = bytes(range(256)) * 16',
    `for i in range(${n}): h.pwrite(buf, i * 4096)`,
    `bad = [i for i in range(${n}) if h.pread(4096, i * 4096) != buf]`,
    'assert not bad, "blocks read back differ: %r" % bad[:10]',
  ].join('\n');
}

t.test('one NBD write is one trace across SDC, MDM and both SDS', { skip }, async (t: Test) => {
  const recv = await startOtlpReceiver(t);
  // Every process this test starts inherits these (spawnPflex passes process.env).
  Object.assign(process.env, {
    OTEL_EXPORTER_OTLP_ENDPOINT: recv.url, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1',
    OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BSP_MAX_QUEUE_SIZE: '64', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '16', PFLEX_LOG_LEVEL: 'debug',
  });
  const c = await startCluster(t, { pgCount: 8 });
  await c.volume('vol1', 16 * MiB);
  for (const p of [c.mdm.proc, c.sdc.proc, ...c.sds.map((s) => s.proc)]) t.ok(p.logs.some((l) => l.msg === 'tracing on'), 'each process traces');

  await t.test('the write, its MDM call and its replication in one trace', async (t) => {
    const w = await nbdsh(c.sdc.uri('vol1'), 'h.pwrite(b"\\x5a" * 65536, 0)');
    t.equal(w.code, 0, `nbdsh wrote 64 KiB${w.code ? `: ${w.out}` : ''}`);
    const sdsSpans = (s: ReceivedSpan[], traceId: string) => s.filter((x) => x.traceId === traceId && x.name === 'sds.write');
    let root: ReceivedSpan | undefined;
    await recv.waitFor((s) => {
      root = s.find((x) => x.name === 'nbd.write');
      return root !== undefined && sdsSpans(s, root.traceId).length >= 2
        && s.some((x) => x.traceId === root!.traceId && x.service === 'pflex-mdm');
    });
    const r = root!;
    t.ok(recv.contentTypes.every((ct) => ct.startsWith('application/json')), 'the exporters send OTLP/HTTP JSON');
    t.equal(recv.rejected, 0, 'no export request was refused');
    t.same(recv.spans.filter((x) => x.name.startsWith('nbd.')).map((x) => x.name), ['nbd.write'], 'one NBD request, one root span');
    const trace = recv.spans.filter((x) => x.traceId === r.traceId);
    t.equal(r.service, 'pflex-sdc');
    t.equal(r.instance, 'sdc1');
    t.equal(r.kind, KIND.SERVER, 'the NBD request span is a server span');
    t.equal(r.parentSpanId, '', 'and the root of its trace');
    t.equal(r.attributes['nbd.length'], 65536);
    t.equal(r.attributes['pflex.volume'], 'vol1');

    const primary = trace.find((x) => x.name === 'sds.write' && x.attributes['pflex.forwarded'] === false);
    t.ok(primary, 'the primary SDS has a server span');
    t.equal(primary?.service, 'pflex-sds');
    t.equal(primary?.kind, KIND.SERVER);
    t.equal(primary?.parentSpanId, r.spanId, 'the primary\'s span is a child of the NBD request span');
    const forward = trace.find((x) => x.name === 'sds.forward.write');
    t.ok(forward, 'the primary\'s forward to the secondary is traced');
    t.equal(forward?.kind, KIND.CLIENT);
    t.equal(forward?.parentSpanId, primary?.spanId, 'the forward is a child of the primary\'s span');
    t.equal(forward?.instance, primary?.instance, 'made by the primary');
    const secondary = trace.find((x) => x.name === 'sds.write' && x.attributes['pflex.forwarded'] === true);
    t.ok(secondary, 'the secondary has a server span');
    t.equal(secondary?.parentSpanId, forward?.spanId, 'the secondary\'s span is a child of the forward');
    t.not(secondary?.instance, primary?.instance, 'on another SDS');
    t.equal(secondary?.attributes['pflex.sds_id'], forward?.attributes['pflex.peer_sds_id'], 'the SDS the forward went to');

    // The first IO of a fresh SDC has no IO token yet: fetching it is part of the request.
    const tokenCall = trace.find((x) => x.service === 'pflex-sdc' && x.name === 'POST /sdcs/{id}/tokens');
    t.ok(tokenCall, 'the SDC\'s IO-token call to the MDM is in the trace');
    t.equal(tokenCall?.kind, KIND.CLIENT);
    t.equal(tokenCall?.parentSpanId, r.spanId, 'as a child of the NBD request span');
    const tokenServe = trace.find((x) => x.service === 'pflex-mdm' && x.name === 'POST /sdcs/:id/tokens');
    t.ok(tokenServe, 'the MDM has a server span for it');
    t.equal(tokenServe?.kind, KIND.SERVER);
    t.equal(tokenServe?.parentSpanId, tokenCall?.spanId, 'a child of the SDC\'s client span');
    t.equal(tokenServe?.attributes['http.response.status_code'], 200);
    for (const x of trace.filter((s) => s.service === 'pflex-mdm')) {
      t.ok(trace.some((p) => p.spanId === x.parentSpanId && p.service === 'pflex-sdc' && p.kind === KIND.CLIENT), `MDM span ${x.name} has the SDC's client span as parent`);
    }
    const ids = new Set(trace.map((x) => x.spanId));
    t.ok(trace.every((x) => x === r || ids.has(x.parentSpanId)), 'every span of the trace hangs under the root');

    // pino lines of the traced work carry the ids.
    t.ok(c.mdm.proc.logs.some((l) => l.msg === 'request' && l.trace_id === r.traceId && l.span_id === tokenServe?.spanId && String(l.url).endsWith('/tokens')),
      'the MDM\'s request log line carries trace_id and span_id');
    t.ok(c.sdc.proc.logs.some((l) => l.msg === 'IO token renewed' && l.trace_id === r.traceId && l.span_id === r.spanId), 'so does the SDC\'s token line');
    t.notOk(c.mdm.proc.logs.some((l) => l.msg === 'request' && typeof l.url === 'string' && l.url.includes('heartbeat') && l.trace_id !== undefined), 'heartbeats are not traced');
  });

  await t.test('a dead or stuck collector neither fails nor holds up IO', async (t) => {
    const deadPort = await freePort();
    const stuck = await startOtlpReceiver(t, 'hang');
    const sdcs = await Promise.all([
      startSdcProc(t, c.mdm, 'sdc-dead', ['--otel-endpoint', `http://127.0.0.1:${deadPort}`, '--trace-sample-ratio', '1']),
      startSdcProc(t, c.mdm, 'sdc-stuck', ['--otel-endpoint', stuck.url, '--trace-sample-ratio', '1']),
    ]);
    for (const [i, sdc] of sdcs.entries()) {
      const v = await c.mdm.admin.createVolume({ name: `vol-${sdc.id}`, storagePoolId: c.poolId, sizeBytes: 16 * MiB });
      await c.mdm.admin.mapVolume(v.id, sdc.id);
      const n = 200;
      const run = await nbdsh(sdc.uri(`vol-${sdc.id}`), writeAndVerify(n));
      t.equal(run.code, 0, `${i === 0 ? 'dead' : 'stuck'} collector: ${n} writes done and read back${run.code ? `: ${run.out}` : ''}`);
    }
    const [dead, hung] = sdcs as [SdcProc, SdcProc];
    const d = await waitForStats(c.mdm, dead, (s) => s.spansFailed + s.spansDropped > 0);
    t.equal(d.enabled, true, 'the dead-collector SDC traces (flags win over the environment)');
    t.equal(d.spansExported, 0, 'nothing reached a port with nothing listening');
    t.ok(d.spansFailed + d.spansDropped > 0, `its spans failed (${d.spansFailed}) or were dropped (${d.spansDropped})`);
    const h = await waitForStats(c.mdm, hung, (s) => s.spansDropped > 0);
    t.equal(h.spansExported, 0, 'the stuck collector accepted nothing');
    t.ok(h.spansDropped > 0, `the bounded queue dropped spans (${h.spansDropped}) instead of growing`);
    t.ok(h.spansQueued <= 64, `queue within its bound (${h.spansQueued})`);
    t.ok(stuck.contentTypes.length > 0, 'the stuck collector did receive an export request');
  });
});
