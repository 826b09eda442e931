"""Edge cases of pflex's NBD server, driven by libnbd. argv: base URI (nbd://host:port), export size."""
import errno
import os
import sys

import nbd
from common import connect, expect_errno, extents, structured_chunks

base, size = sys.argv[1], int(sys.argv[2])
uri = base + "/disk"
MiB = 1 << 20

# Unknown export: GO fails (ERR_UNKNOWN), the handshake can go on in opt mode.
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_uri(base + "/nope")
try:
    h.opt_go()
    raise AssertionError("GO on an unknown export succeeded")
except nbd.Error as e:
    # libnbd reports NBD_REP_ERR_UNKNOWN as ENOENT.
    assert e.errnum == errno.ENOENT, e.string
names = []
h.opt_list(lambda name, desc: names.append((name, desc)))
assert names == [("disk", "memory")], names
ctx = []
h.set_export_name("disk")
h.opt_list_meta_context(lambda name: ctx.append(name))
assert ctx == ["base:allocation"], ctx
h.opt_info()
assert h.get_size() == size
h.opt_go()
assert h.pread(1, 0) == b"\0"
h.shutdown()
print("unknown export: ok")

# The empty export name is the default export.
h = nbd.NBD()
h.set_full_info(True)
h.connect_uri(base + "/")
assert h.get_size() == size
assert h.get_canonical_export_name() == "disk", h.get_canonical_export_name()
h.shutdown()
print("default export: ok")

# Out of range, with libnbd's own checks turned off so the server decides.
h = connect(uri, meta=True, strict=False)
expect_errno("EINVAL", h.pread, 4096, size - 1024)
expect_errno("ENOSPC", h.pwrite, b"x" * 4096, size - 1024)
expect_errno("ENOSPC", h.zero, 4096, size)
expect_errno("EINVAL", h.trim, 1, size)
expect_errno("EINVAL", h.cache, 2, size - 1)
expect_errno("EINVAL", h.block_status, 2, size - 1, lambda *a: 0)
expect_errno("EOVERFLOW", h.pread, 32 * MiB + 1, 0)
expect_errno("EOVERFLOW", h.pwrite, bytes(32 * MiB + 512), 0)
expect_errno("EINVAL", h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE)
expect_errno("EINVAL", h.pwrite, b"x", 0, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(512, size - 512) == bytes(512)
print("out of range: ok")

# Zero-length requests: a no-op success, except BLOCK_STATUS (must describe >= 1 byte).
assert h.pread(0, 0) == b""
h.pwrite(b"", size)
h.zero(0, 0)
h.trim(0, 0)
h.cache(0, 0)
expect_errno("EINVAL", h.block_status, 0, 0, lambda *a: 0)
print("zero length: ok")

# Unaligned requests against a python model of the disk.
model = bytearray(4 * MiB)
rnd = os.urandom(300000)
for off, ln in [(1, 3), (65535, 2), (65530, 70000), (4095, 4097), (123457, 99991), (1 << 21, 1)]:
    h.pwrite(rnd[:ln], off)
    model[off:off + ln] = rnd[:ln]
    rnd = rnd[ln:] + rnd[:ln]
for off, ln in [(0, 7), (65534, 5), (65000, 140000), (1, 4 * MiB - 2), (2097151, 3)]:
    assert h.pread(ln, off) == bytes(model[off:off + ln]), (off, ln)
h.zero(3, 1000)
model[1000:1003] = bytes(3)
assert h.pread(2000, 0) == bytes(model[0:2000])
print("unaligned: ok")

# Write zeroes, trim, FUA, fast zero, NO_HOLE.
h.pwrite(b"\x07" * MiB, 8 * MiB, nbd.CMD_FLAG_FUA)
h.zero(256 * 1024, 8 * MiB + 4096, nbd.CMD_FLAG_FAST_ZERO)
h.zero(64 * 1024, 8 * MiB + 512 * 1024, nbd.CMD_FLAG_NO_HOLE)
h.trim(64 * 1024, 8 * MiB + 768 * 1024)
exp = bytearray(b"\x07" * MiB)
exp[4096:4096 + 256 * 1024] = bytes(256 * 1024)
exp[512 * 1024:576 * 1024] = bytes(64 * 1024)
exp[768 * 1024:832 * 1024] = bytes(64 * 1024)
assert h.pread(MiB, 8 * MiB) == bytes(exp)
ext = extents(h, 8 * MiB + 512 * 1024, 64 * 1024)
assert ext == [(64 * 1024, 0)], ext  # NO_HOLE kept the page allocated
ext = extents(h, 8 * MiB + 768 * 1024, 64 * 1024)
assert ext == [(64 * 1024, 3)], ext  # the trimmed page is a hole
h.flush()
print("zero/trim/fua: ok")

# Block status: merged runs, REQ_ONE, clipping to the request.
h.pwrite(b"\x01" * (128 * 1024), 16 * MiB)
ext = extents(h, 16 * MiB - 64 * 1024, 320 * 1024)
assert ext == [(64 * 1024, 3), (128 * 1024, 0), (128 * 1024, 3)], ext
ext = extents(h, 16 * MiB - 64 * 1024, 320 * 1024, nbd.CMD_FLAG_REQ_ONE)
assert ext == [(64 * 1024, 3)], ext
ext = extents(h, 16 * MiB + 1000, 10)
assert ext == [(10, 0)], ext
print("block status: ok")

# Structured reads: unwritten ranges come back as OFFSET_HOLE, written as OFFSET_DATA.
chunks, data = structured_chunks(h, 16 * MiB - 64 * 1024, 256 * 1024)
assert chunks == [("hole", 16 * MiB - 64 * 1024, 64 * 1024), ("data", 16 * MiB, 128 * 1024), ("hole", 16 * MiB + 128 * 1024, 64 * 1024)], chunks
assert data == bytes(64 * 1024) + b"\x01" * (128 * 1024) + bytes(64 * 1024)
chunks, data = structured_chunks(h, 16 * MiB - 64 * 1024, 256 * 1024, nbd.CMD_FLAG_DF)
assert chunks == [("data", 16 * MiB - 64 * 1024, 256 * 1024)], chunks
assert data == bytes(64 * 1024) + b"\x01" * (128 * 1024) + bytes(64 * 1024)
chunks, _ = structured_chunks(h, 100 * MiB, MiB)
assert chunks == [("hole", 100 * MiB, MiB)], chunks
print("structured holes: ok")
h.shutdown()
print("OK")
