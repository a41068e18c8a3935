"""``voxelflow register CONFIG.toml``: only the atlas registration stage of a configuration.

Reads ``[atlas] brainglobe``, ``orientation``, ``registration_channel`` and
``registration`` (parameters), registers the atlas template to the scan's
registration channel (cached like every step, so a later ``voxelflow run``
reuses it) and writes ``registration/`` into the run folder (``registration-new/`` if the
folder holds a finished run, whose ``registration/`` stays with its tables): the transforms
(``affine.tfm``, ``deformable.tfm``), ``registration.json`` with the QC
figures and checkerboard / edge pictures in three planes.
"""

from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("register", help="register a BrainGlobe atlas to the scan (no object detection)",
                              description=__doc__)
    p.add_argument("config", help="TOML configuration file with an [atlas] brainglobe and orientation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. atlas.orientation=psl (repeatable)")
    p.add_argument("--out", default=None, help="run folder (overrides output.folder)")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.set_defaults(func=run)


def run(args) -> int:
    from voxelflow.errors import ConfigError
    from voxelflow.pipelines.config import load_config
    from voxelflow.pipelines.registration import register_only

    t0 = time.perf_counter()
    config = load_config(args.config, args.overrides,
                         values={"output.folder": args.out} if args.out is not None else None)
    if not config.atlas.brainglobe:
        raise ConfigError("atlas.brainglobe: expected a BrainGlobe atlas folder to register")
    qc = register_only(config, progress=not args.quiet, stream=sys.stderr)
    print(f"voxelflow register: Mattes MI {qc['metric_start']:.3f} -> {qc['metric_affine']:.3f} (affine) -> "
          f"{qc['metric_final']:.3f}, Jacobian {qc['jacobian_min']:.2f}..{qc['jacobian_max']:.2f}, "
          f"folded {qc['folded_fraction']:.2%}, {time.perf_counter() - t0:.1f} s -> {qc['folder']}")
    return 0
