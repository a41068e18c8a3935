"""Hold a cache node from another process, for the lock tests.

``python cache_holder.py URL MODE [SECONDS]`` opens URL with ``cdir_init``, prints
``ready`` and then, by MODE: ``hold`` sleeps (until killed); ``commit`` sleeps
SECONDS and saves 42; ``die`` exits without running exit handlers (a crash that
leaves its lock behind); ``exit`` exits normally.
"""

import os
import sys
import time

from voxelflow.cache import cdir_init, save

url, mode = sys.argv[1], sys.argv[2]
cdir_init(url)
print("ready", os.getpid(), flush=True)
if mode == "hold":
    time.sleep(120)
elif mode == "commit":
    time.sleep(float(sys.argv[3]))
    save(url, 42)
elif mode == "die":
    os._exit(0)
