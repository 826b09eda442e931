"""64 requests in flight on one connection, and multi-conn flush visibility. argv: URI."""
import os
import sys

import nbd
from common import connect

uri = sys.argv[1]
h = connect(uri)
assert h.can_multi_conn()
N, BS = 64, 65536 + 512  # unaligned size so requests straddle pages
payloads = [os.urandom(BS) for _ in range(N)]
cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(p)), i * BS) for i, p in enumerate(payloads)]
assert h.aio_in_flight() == N, h.aio_in_flight()
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    assert h.aio_command_completed(c)

bufs = [nbd.Buffer(BS) for _ in range(N)]
order = list(range(N))
order.reverse()
cookies = {h.aio_pread(bufs[i], i * BS): i for i in order}
peak = h.aio_in_flight()
assert peak == N, peak
while h.aio_in_flight() > 0:
    h.poll(-1)
for c, i in cookies.items():
    assert h.aio_command_completed(c)
    assert bufs[i].to_bytearray() == payloads[i], "request %d returned the wrong data" % i
print("64 in flight: ok")

# Multi-conn: a write flushed on one connection is visible on the others.
others = [connect(uri) for _ in range(3)]
for k, o in enumerate(others):
    data = bytes([k + 1]) * 4096
    o.pwrite(data, 32 << 20)
    o.flush()
    for other in [h] + others:
        assert other.pread(4096, 32 << 20) == data
    h.pwrite(bytes([0x80 + k]) * 512, (32 << 20) + 512, nbd.CMD_FLAG_FUA)
    assert o.pread(512, (32 << 20) + 512) == bytes([0x80 + k]) * 512
for o in others:
    o.shutdown()
h.shutdown()
print("OK")
