import { PflexError } from '../shared/errors.js';
import { noun, print, verb } from './common.js';
import { table, time } from './format.js';

/** "15m", "2h", "3d" ago, or an ISO date. */
function sinceMs(text: string, nowMs = Date.now()): number {
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (m) return nowMs - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `not a time: "${text}" (use e.g. 15m, 2h, 3d or an ISO date)`);
  return t;
}

export const auditCommand = noun('audit', 'the audit log of every change made through the MDM', [
  verb<{ actor?: string; action?: string; result?: 'success' | 'failure'; since?: string; limit: number }>('list', 'list audit entries, newest first', (y) =>
    y.option('actor', { type: 'string' })
      .option('action', { type: 'string', describe: 'e.g. "POST /volumes"' })
      .option('result', { type: 'string', choices: ['success', 'failure'] })
      .option('since', { type: 'string', describe: 'e.g. 15m, 2h, 3d or an ISO date' })
      .option('limit', { type: 'number', default: 100 }), async (args, c) => {
    const list = await c.audit({
      limit: args.limit,
      ...(args.actor ? { actor: args.actor } : {}),
      ...(args.action ? { action: args.action } : {}),
      ...(args.result ? { result: args.result } : {}),
      ...(args.since ? { sinceMs: sinceMs(args.since) } : {}),
    });
    print(args, list, () => table(list, [
      { header: 'id', value: (e) => e.id, align: 'right' },
      { header: 'time', value: (e) => time(e.atMs) },
      { header: 'actor', value: (e) => e.actor },
      { header: 'role', value: (e) => e.role },
      { header: 'action', value: (e) => e.action },
      { header: 'target', value: (e) => e.target },
      { header: 'result', value: (e) => (e.result === 'success' ? 'ok' : `FAILED ${e.errorCode ?? e.status}`) },
      { header: 'ip', value: (e) => e.ip },
    ]));
  }),
]);
