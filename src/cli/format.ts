/**
 * Human output of the CLI: aligned tables and key/value blocks. Commands
 * print these by default and the raw API objects with --json.
 */
import { formatBytes } from '../shared/units.js';

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | boolean | null | undefined;
  align?: 'left' | 'right';
}

function cell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined || v === '') return '-';
  return String(v);
}

/** An aligned table with a header row; "(none)" for no rows. */
export function table<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((row) => columns.map((c) => cell(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

/** "key: value" lines, keys aligned. */
export function keyValues(pairs: ReadonlyArray<readonly [string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join('\n');
}

export function bytes(n: number | null | undefined): string {
  return n === null || n === undefined ? '-' : formatBytes(n);
}

/** Milliseconds since the epoch as an ISO time without milliseconds. */
export function time(ms: number | null | undefined): string {
  return ms === null || ms === undefined || ms <= 0 ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Age of a timestamp, e.g. "3s ago". */
export function ago(ms: number | null | undefined, nowMs = Date.now()): string {
  if (ms === null || ms === undefined || ms <= 0) return '-';
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
