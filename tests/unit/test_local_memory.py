"""The local stack gives freed image buffers back (backend/local/memory.py, issue #29.8).

In a fresh interpreter, four threads each make and drop two 30 MP images, as the stack's Lambda
threads do: with glibc's dynamic mmap threshold the freed buffers stayed in the arenas (621 MB
more RSS, measured on this project's machine); with the fixed threshold, 2 MB. `make bench`
(local-memory) measures the whole stack with 30 MP jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORK = """
import gc, sys, threading
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
if sys.argv[1] == "stack":
    from backend.local import memory
    assert memory.return_large_frees()
import numpy as np
from PIL import Image, ImageFilter
base = rss()
def images():
    for _ in range(2):
        image = Image.new("RGB", (6000, 5000), (200, 30, 40))
        grey = np.asarray(image.filter(ImageFilter.BoxBlur(2)).convert("L")).astype(np.float32)
        del image, grey
threads = [threading.Thread(target=images) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
gc.collect()
print(round(rss() - base))
"""


def _growth(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", WORK, mode], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_freed_image_buffers_go_back_to_the_system() -> None:
    assert _growth("stack") < 64  # MB: what is alive after the images are dropped
