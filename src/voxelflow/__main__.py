import sys

from voxelflow.cli import main

sys.exit(main())
