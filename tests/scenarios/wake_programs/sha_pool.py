"""A pool of 4 threads hashing 4 MB buffers with hashlib.sha256 (which
releases the GIL for large buffers): healthy."""

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

BUF = os.urandom(4 << 20)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 80
with ThreadPoolExecutor(4) as ex:
    digests = list(ex.map(lambda i: hashlib.sha256(BUF).hexdigest(), range(n)))
print(len(set(digests)))
