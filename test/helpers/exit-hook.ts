import { onExit } from 'signal-exit';

/**
 * Runs fn synchronously when this test process ends, whether normally or by
 * a signal. tap's per-file timeout (and a CTRL-C) ends a test file with
 * SIGTERM, and then neither t.teardown nor process 'exit' listeners run:
 * children and containers the file started would outlive it. Returns the
 * function that unregisters fn (call it once the resource is gone).
 */
export function atProcessExit(fn: () => void): () => void {
  return onExit(() => {
    try {
      fn();
    } catch {
      // Exiting anyway: a cleanup that fails must not stop the others.
    }
  });
}
