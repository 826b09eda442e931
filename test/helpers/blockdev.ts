// Helpers for tests that drive an NBD export through real block-device
// clients on the host (nbdfuse + loop devices) and for picking the server.
import { startNbdkit, startPflexNbd, type NbdTarget } from './nbd.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export type ServerKind = 'pflex' | 'nbdkit';

/**
 * The server a real-client test drives: our `pflex nbd serve` (memory
 * backend). PFLEX_TEST_NBD_SERVER=nbdkit runs the same test against the
 * reference server, to tell a client quirk from a server bug.
 */
export async function startServerUnderTest(
  t: Teardown,
  opts: { memory: string; kind?: ServerKind },
): Promise<NbdTarget & { kind: ServerKind }> {
  const kind = opts.kind ?? (process.env.PFLEX_TEST_NBD_SERVER === 'nbdkit' ? 'nbdkit' : 'pflex');
  if (kind === 'nbdkit') return { ...(await startNbdkit(t, ['memory', opts.memory])), kind };
  return { ...(await startPflexNbd(t, { memory: opts.memory })), kind };
}
