import type { Alert, Severity } from '../shared/mdm-client.js';
import { noun, print, verb } from './common.js';
import { keyValues, table, time } from './format.js';

const SEVERITIES = ['INFO', 'WARNING', 'ERROR', 'CRITICAL'] as const;

const show = (a: Alert) =>
  keyValues([
    ['id', a.id],
    ['severity', a.severity],
    ['state', a.state],
    ['category', a.category],
    ['source', a.source],
    ['message', a.message],
    ['raised', time(a.raisedAtMs)],
    ['updated', time(a.updatedAtMs)],
    ['resolved', a.resolvedAtMs ? `${time(a.resolvedAtMs)} by ${a.resolvedBy ?? '-'}` : '-'],
  ]);

export const alertCommand = noun('alert', 'alerts raised by the MDM', [
  verb<{ severity?: Severity; minSeverity?: Severity; state?: 'open' | 'resolved'; all?: boolean; category?: string; source?: string; limit: number }>(
    'list', 'list alerts, newest first (open ones unless --all)', (y) =>
      y.option('severity', { type: 'string', choices: SEVERITIES })
        .option('min-severity', { type: 'string', choices: SEVERITIES })
        .option('state', { type: 'string', choices: ['open', 'resolved'] })
        .option('all', { type: 'boolean', describe: 'open and resolved' })
        .option('category', { type: 'string' })
        .option('source', { type: 'string' })
        .option('limit', { type: 'number', default: 100 }),
    async (args, c) => {
      const state = args.state ?? (args.all ? undefined : 'open');
      const list = await c.listAlerts({
        limit: args.limit,
        ...(state ? { state } : {}),
        ...(args.severity ? { severity: args.severity } : {}),
        ...(args.minSeverity ? { minSeverity: args.minSeverity } : {}),
        ...(args.category ? { category: args.category } : {}),
        ...(args.source ? { source: args.source } : {}),
      });
      print(args, list, () => table(list, [
        { header: 'id', value: (a) => a.id, align: 'right' },
        { header: 'severity', value: (a) => a.severity },
        { header: 'state', value: (a) => a.state },
        { header: 'category', value: (a) => a.category },
        { header: 'source', value: (a) => a.source },
        { header: 'raised', value: (a) => time(a.raisedAtMs) },
        { header: 'message', value: (a) => a.message },
      ]));
    }),
  verb<{ id: number }>('show <id>', 'show an alert', (y) => y.positional('id', { type: 'number', demandOption: true }), async (args, c) => {
    const a = await c.getAlert(args.id);
    print(args, a, () => show(a));
  }),
  verb<{ severity: Severity; category: string; source: string; message: string }>('raise', 'raise an alert by hand', (y) =>
    y.option('severity', { type: 'string', choices: SEVERITIES, demandOption: true })
      .option('category', { type: 'string', default: 'manual' })
      .option('source', { type: 'string', default: 'cli' })
      .option('message', { type: 'string', demandOption: true }), async (args, c) => {
    const a = await c.raiseAlert({ severity: args.severity, category: args.category, source: args.source, message: args.message });
    print(args, a, () => show(a));
  }),
  verb<{ id: number }>('resolve <id>', 'resolve an alert', (y) => y.positional('id', { type: 'number', demandOption: true }), async (args, c) => {
    const a = await c.resolveAlert(args.id);
    print(args, a, () => `resolved alert ${a.id}`);
  }),
]);
