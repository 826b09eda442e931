"""A steady writer/reader through an NBD export, driven by test/sdc/silent-primary.test.ts.

Usage: io_loop.py URI OFFSET BLOCKS   (run with /usr/bin/python3: python3-libnbd)

One request at a time: write block i % BLOCKS (4 KiB, a pattern naming the
write), then read back an earlier block and check it. Every completed
request prints a JSON line {"op", "i", "t0", "t1"} (wall-clock ms), so the
test can see how long IO stalled. Commands on stdin: "stop" ends the loop,
"verify" reads every block back and checks it holds its last write; "quit"
exits. Any NBD error or mismatch prints {"error": ...} and exits 1.
"""
import json
import select
import sys
import time

import nbd

BLOCK = 4096


def pattern(i, block):
    head = ("write %08d block %04d " % (i, block)).encode()
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


def now_ms():
    return time.time() * 1000.0


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def command(block):
    """The next stdin line, waiting for it when block, else only if one is ready."""
    if not block and not select.select([sys.stdin], [], [], 0)[0]:
        return None
    line = sys.stdin.readline()
    return line.strip() if line else "quit"


def main():
    uri, base, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    h = nbd.NBD()
    h.connect_uri(uri)
    last = {}
    emit({"ready": True})
    i = 0
    try:
        while command(False) != "stop":
            b = i % blocks
            data = pattern(i, b)
            t0 = now_ms()
            h.pwrite(data, base + b * BLOCK)
            emit({"op": "write", "i": i, "t0": t0, "t1": now_ms()})
            last[b] = data
            r = (i * 7 + 3) % blocks
            if r in last:
                t0 = now_ms()
                got = h.pread(BLOCK, base + r * BLOCK)
                emit({"op": "read", "i": i, "t0": t0, "t1": now_ms()})
                if got != last[r]:
                    emit({"error": "block %d read back wrong data: %r" % (r, got[:32])})
                    return 1
            i += 1
        emit({"stopped": True, "writes": i})
        while True:
            cmd = command(True)
            if cmd == "quit":
                return 0
            if cmd == "verify":
                for b, data in sorted(last.items()):
                    got = h.pread(BLOCK, base + b * BLOCK)
                    if got != data:
                        emit({"error": "verify: block %d holds %r, wrote %r" % (b, got[:32], data[:32])})
                        return 1
                emit({"verified": len(last)})
    except nbd.Error as e:
        emit({"error": "NBD error: %s (errno %s)" % (e.string, e.errnum)})
        return 1
    finally:
        try:
            h.shutdown()
        except nbd.Error:
            pass


if __name__ == "__main__":
    sys.exit(main())
