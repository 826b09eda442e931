"""Helpers shared by the nbdsh/python3-libnbd test scripts (run with /usr/bin/python3)."""
import errno
import nbd


def connect(uri, meta=False, strict=True):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        h.set_strict_mode(0)
    h.connect_uri(uri)
    return h


def expect_errno(want, fn, *args, **kwargs):
    """Runs fn, which must fail with the NBD errno `want` (an errno name)."""
    try:
        fn(*args, **kwargs)
    except nbd.Error as e:
        got = errno.errorcode.get(e.errnum, str(e.errnum))
        assert e.errnum == getattr(errno, want), "expected %s, got %s (%s)" % (want, got, e.string)
        return
    raise AssertionError("expected %s, the call succeeded" % want)


def extents(h, offset, count, flags=0):
    """[(length, flags), ...] for base:allocation."""
    out = []

    def cb(meta, off, ents, err):
        assert meta == nbd.CONTEXT_BASE_ALLOCATION, meta
        assert off == offset
        for i in range(0, len(ents), 2):
            out.append((ents[i], ents[i + 1]))
        return 0

    h.block_status(count, offset, cb, flags)
    return out


def structured_chunks(h, offset, count, flags=0):
    """[(kind, offset, length), ...] for a structured read, kind 'data' or 'hole', plus the bytes."""
    chunks = []
    data = bytearray(count)

    def cb(buf, off, status, err):
        kind = {nbd.READ_DATA: "data", nbd.READ_HOLE: "hole"}.get(status, "other:%d" % status)
        chunks.append((kind, off, len(buf)))
        data[off - offset:off - offset + len(buf)] = buf
        return 0

    h.pread_structured(count, offset, cb, flags)
    chunks.sort(key=lambda c: c[1])
    return chunks, bytes(data)
