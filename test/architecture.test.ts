/**
 * The import rules of docs/architecture.md, checked on the sources: the
 * libraries (src/nbd, src/shared, src/dataplane) import no component, the
 * NBD library imports nothing of pflex at all, and a component never imports
 * another component's module (components talk over the network).
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers/proc.js';

const COMPONENTS = new Set(['sdc', 'sds', 'mdm', 'mgmt', 'cli', 'sim']);
/**
 * May import components: the CLI starts them, and the simulator (src/sim)
 * runs the real SDS, SDC and MDM modules in one deterministic process.
 */
const COMPOSERS = new Set(['cli', 'sim']);

interface Edge { from: string; to: string }

/** Every relative import (static, side-effect, dynamic, import type) of the .ts files under dir, as src-relative paths. */
export function importEdges(srcDir: string): Edge[] {
  const edges: Edge[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const info = ts.preProcessFile(readFileSync(p, 'utf8'), true, true);
        for (const f of info.importedFiles) {
          if (!f.fileName.startsWith('.')) continue;
          edges.push({ from: relative(srcDir, p), to: relative(srcDir, normalize(join(dirname(p), f.fileName))) });
        }
      }
    }
  };
  walk(srcDir);
  return edges;
}

const top = (p: string): string => p.split(sep)[0]!;

/** The edges that break the rules, with the reason. */
export function violations(edges: Edge[]): string[] {
  const out: string[] = [];
  for (const { from, to } of edges) {
    const a = top(from);
    const b = top(to);
    if (to.startsWith('..')) out.push(`${from} -> ${to}: imports outside src/`);
    else if (a === 'nbd' && b !== 'nbd') out.push(`${from} -> ${to}: the NBD library imports nothing of pflex`);
    else if (['shared', 'dataplane'].includes(a) && COMPONENTS.has(b)) out.push(`${from} -> ${to}: a library imports a component`);
    else if (COMPONENTS.has(a) && COMPONENTS.has(b) && a !== b && !COMPOSERS.has(a)) out.push(`${from} -> ${to}: a component imports another component`);
  }
  return out;
}

t.test('src/ keeps the import rules', async (t) => {
  const edges = importEdges(join(ROOT, 'src'));
  t.ok(edges.length > 200, `${edges.length} imports read`);
  t.ok(edges.some((e) => e.from.startsWith(`mdm${sep}`) && e.to.startsWith(`shared${sep}`)), 'the MDM imports shared modules (parser sees them)');
  t.same(violations(edges), [], 'no forbidden import');
});

t.test('the checker catches each kind of forbidden import', async (t) => {
  const v = violations([
    { from: join('shared', 'x.ts'), to: join('sds', 'limits.js') },
    { from: join('dataplane', 'x.ts'), to: join('mdm', 'db.js') },
    { from: join('nbd', 'errors.ts'), to: join('shared', 'errors.js') },
    { from: join('mdm', 'services', 'x.ts'), to: join('sds', 'rebuild.js') },
    { from: join('sdc', 'node.ts'), to: join('sds', 'x.js') },
    { from: join('sdc', 'node.ts'), to: join('dataplane', 'client.js') },
    { from: join('cli', 'up.ts'), to: join('mdm', 'server.js') },
    { from: join('sds', 'node.ts'), to: join('sds', 'store', 'x.js') },
  ]);
  t.equal(v.length, 5, v.join('\n'));
});
