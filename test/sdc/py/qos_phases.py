"""Timed request phases on ONE NBD connection (run with /usr/bin/python3: python3-libnbd).

Usage: qos_phases.py URI
Reads one JSON command a line on stdin, {"op": "write"|"read", "size": S,
"n": N, "offset": O, "byte": B}: N requests of S bytes at O, O+S, ...;
writes fill the byte B, reads check that they read it. Answers each command with
one JSON line {"seconds": s, "requests": n}. Ends at end of input.
"""
import json, sys, time
import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
for line in sys.stdin:
    cmd = json.loads(line)
    size, n, off, byte = cmd['size'], cmd['n'], cmd.get('offset', 0), cmd['byte']
    want = bytes([byte]) * size
    started = time.monotonic()
    for i in range(n):
        if cmd['op'] == 'write':
            h.pwrite(want, off + i * size)
        else:
            got = h.pread(size, off + i * size)
            assert got == want, 'read %d at %d: not the written bytes' % (i, off + i * size)
    print(json.dumps({'seconds': time.monotonic() - started, 'requests': n}), flush=True)
h.shutdown()
