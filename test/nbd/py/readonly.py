"""A read-only export refuses every write-type command with EPERM. argv: URI of a --read-only server."""
import sys

import nbd
from common import connect, expect_errno

h = connect(sys.argv[1], strict=False)
assert h.is_read_only()
assert not h.can_trim() and not h.can_zero() and not h.can_fua()
expect_errno("EPERM", h.pwrite, b"x" * 512, 0)
expect_errno("EPERM", h.zero, 512, 0)
expect_errno("EPERM", h.trim, 512, 0)
expect_errno("EPERM", h.pwrite, b"x" * 512, h.get_size() + 512)  # EPERM wins over range
assert h.pread(512, 0) == bytes(512)
h.flush()
h.shutdown()
print("OK")
