"""The configuration tree: :class:`Config`, one dataclass per ``[section]``, and dotted-key lookup."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from voxelflow.errors import ConfigError
from voxelflow.pipelines.config.atlas import AtlasSection
from voxelflow.pipelines.config.cells import CellsSection
from voxelflow.pipelines.config.compute import ComputeSection
from voxelflow.pipelines.config.input import InputSection
from voxelflow.pipelines.config.mask import MaskSection
from voxelflow.pipelines.config.output import OutputSection
from voxelflow.pipelines.config.pipeline import PlaqueSection


@dataclass
class Config:
    """A validated configuration: ``config.input.url``, ``config.pipeline.threshold_factor``, ..."""

    input: InputSection
    atlas: AtlasSection
    pipeline: PlaqueSection
    mask: MaskSection
    cells: CellsSection
    output: OutputSection
    compute: ComputeSection

    def get(self, dotted: str) -> Any:
        """The value of ``"section.key"``."""
        section, name = split_key(dotted)
        return getattr(getattr(self, section), name)

    def as_dict(self) -> dict[str, Any]:
        """Every key as ``{"section.key": value}`` (what the run record keeps)."""
        return {f"{s}.{f.name}": getattr(getattr(self, s), f.name)
                for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


SECTIONS: dict[str, type] = {"input": InputSection, "atlas": AtlasSection, "pipeline": PlaqueSection,
                              "mask": MaskSection, "cells": CellsSection, "output": OutputSection,
                              "compute": ComputeSection}


def fields_of(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def _known_keys() -> str:
    return ", ".join(f"{s}.{n}" for s in SECTIONS for n in fields_of(s))


def split_key(dotted: str) -> tuple[str, str]:
    section, _, name = dotted.partition(".")
    if section not in SECTIONS or name not in fields_of(section):
        raise ConfigError(f"unknown key {dotted!r}; known keys: {_known_keys()}")
    return section, name
