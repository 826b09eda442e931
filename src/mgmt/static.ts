/**
 * The front end's files, read once at start: the page modules and the
 * style sheet (src/mgmt/public, plain ES modules, no build step) and uPlot
 * from node_modules. Only names in this table are served (no path from
 * the request ever reaches the file system).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile { type: string; body: Buffer }

/** src/mgmt/public of the package (this module runs from dist/src/mgmt). */
export const PUBLIC_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/mgmt/public');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml',
};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

export function loadStatic(): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const p of walk(PUBLIC_DIR)) {
    const type = TYPES[extname(p)];
    if (type) files.set(`/static/${relative(PUBLIC_DIR, p).split('\\').join('/')}`, { type, body: readFileSync(p) });
  }
  const uplotDir = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  files.set('/static/vendor/uPlot.esm.js', { type: TYPES['.js']!, body: readFileSync(join(uplotDir, 'uPlot.esm.js')) });
  files.set('/static/vendor/uPlot.min.css', { type: TYPES['.css']!, body: readFileSync(join(uplotDir, 'uPlot.min.css')) });
  return files;
}
