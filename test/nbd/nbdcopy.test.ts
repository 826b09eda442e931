// nbdcopy (libnbd, multi-connection, parallel requests): 64 MiB of random
// data local file -> export -> local file, compared by hash.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, openSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startServerUnderTest, type ServerKind } from '../helpers/blockdev.js';

const execFileP = promisify(execFile);
const skip = missingClients('nbdcopy', 'nbdkit');
const MiB = 1024 * 1024;
const SIZE_MIB = 64;

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

for (const kind of ['pflex', 'nbdkit'] as ServerKind[]) {
  t.test(`nbdcopy 64 MiB round trip through ${kind}`, { skip }, async (t) => {
    const dir = tempDir(t);
    const target = await startServerUnderTest(t, { memory: `${SIZE_MIB}M`, kind });
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    const fd = openSync(src, 'w');
    for (let i = 0; i < SIZE_MIB; i++) writeSync(fd, randomBytes(MiB));
    closeSync(fd);

    // Default nbdcopy: several connections if the server allows it, 64 requests in flight.
    await execFileP('nbdcopy', ['--flush', src, target.uri]);
    await execFileP('nbdcopy', [target.uri, back]);
    t.equal(await sha256(back), await sha256(src), 'the data read back equals the data written');

    // A second pass with one connection and a different request size.
    await execFileP('nbdcopy', ['--connections=1', '--request-size=65536', '--requests=32', target.uri, join(dir, 'again.img')]);
    t.equal(await sha256(join(dir, 'again.img')), await sha256(src), 'a single-connection copy reads the same bytes');
  });
}
