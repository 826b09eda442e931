"""A sequential writer of known patterns through an NBD export, driven by test/sdc/snapshot-failures.test.ts.

Usage: snap_writer.py URI BLOCKS CHUNK   (run with /usr/bin/python3: python3-libnbd)

One write at a time: write i goes to block (i * 97) % BLOCKS, a 4 KiB block
at offset (block % 64) * CHUNK + (block // 64) * 64 KiB (four blocks in each
of 64 chunks: sub-chunk writes, so a first write into a new layer copies the
chunk up). Its bytes name the write, so the test can tell which write a
block of any image holds. Every acknowledged write prints a JSON line
{"i", "t0", "t1"} (wall-clock ms at issue and at acknowledgement). Commands
on stdin: "stop" ends the loop ({"stopped": n}); "quit" exits. An NBD error
prints {"error": ...} and exits 1.
"""
import sys
import time

import nbd

# The same patterns and stdout/stdin protocol as io_loop.py (this directory is on sys.path).
from io_loop import command, emit, pattern


def main():
    uri, blocks, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    h = nbd.NBD()
    h.connect_uri(uri)
    emit({"ready": True})
    i = 0
    try:
        while command(False) != "stop":
            b = (i * 97) % blocks
            t0 = time.time() * 1000.0
            h.pwrite(pattern(i, b), (b % 64) * chunk + (b // 64) * 65536)
            emit({"i": i, "t0": t0, "t1": time.time() * 1000.0})
            i += 1
        emit({"stopped": i})
        while command(True) != "quit":
            pass
        h.shutdown()
        return 0
    except nbd.Error as e:
        emit({"error": "write %d: %s" % (i, e)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
