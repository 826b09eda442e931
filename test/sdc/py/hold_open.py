"""One NBD connection held open across a change made by the test.

Usage: hold_open.py URI. Writes 4 KiB at offset 0 and prints {"ready": true};
then, for each line read on stdin, reads 4 KiB at offset 0 and prints
{"read": "ok"} or {"error": "<libnbd's message>"}. Exits at end of stdin.
"""
import json
import sys

import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * 4096, 0)
print(json.dumps({"ready": True}), flush=True)
for _ in sys.stdin:
    try:
        h.pread(4096, 0)
        print(json.dumps({"read": "ok"}), flush=True)
    except nbd.Error as e:
        print(json.dumps({"error": e.string}), flush=True)
