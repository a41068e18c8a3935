"""Pure chunked algorithms on dask arrays and tables: no I/O, caching or display.

Import every function from here (``from voxelflow.ops import label,
object_table``); the modules behind this face are private. Every function takes
and returns dask arrays (numpy input is accepted) or pandas tables and computes
exactly what its ``scipy.ndimage`` / ``scikit-image`` counterpart computes on the
whole array, whatever the chunking.

============================  =========  ==========================================
function                      types      what
============================  =========  ==========================================
``threshold``                 IN -> BS   voxels above a value
``threshold_corrected``,      IN -> BS   above a value x bias field, outside a coarse mask;
``foreground_objects``        IN -> LC   its object table in one streaming pass
``relative_threshold``        IN         factor x median intensity inside the tissue
``foreground``                IN -> BS   bias-corrected threshold outside a coarse mask
``auto_negative_mask``        IN -> BS   outside the tissue plus an edge shell (coarse)
``upsample_mask``,            BS         block-reduced masks on the full-resolution grid
``apply_negative_mask``
``percentile_range``,         IN         intensity range and rescaling
``rescale_intensity``
``label``                     BS -> OS   exact connected components
``object_table``              BS/OS->LC  one row per object (centroid, size, stats, bbox)
``filter_by_size``,           LC -> LC   size filter, physical centroids and volumes
``physical_coordinates``
``watershed_split``           BS -> OS   distance-transform watershed of touching objects
``blob_detect``               IN -> LC   LoG / DoG blob detection
``count_objects``,            LC -> CC   objects per block
``count_per_block``,
``count_labels_per_chunk``
``density_map``               LC -> CD   objects per coarse voxel
``assign_regions``,           LC -> RC   atlas region of every object, counts per region
``add_regions``,
``count_by_region``,
``region_volumes``, ``rollup``
``downsample``,               any        block reduction, nearest resampling,
``budget_factors``,                      block factors within a voxel budget
``scale_nearest``,
``affine_nearest``
``resumable_passes``          (hook)     chunk passes keep finished groups in a caller's store
``estimate_bias_field``,      IN         N4 bias field (``bias`` extra: SimpleITK)
``bias_fit_factors``,                    the block grid it fits on
``apply_bias_field``
``model_mask``                IN -> BS   a segmentation model's foreground (3-D, per plane,
                                         tri-planar)
``predict``                   IN -> any  a model on each chunk plus a halo: probabilities,
                                         classes, or instance tiles
``stitch``                    OS         exact global ids for instance tiles
``gaussian``, ``log_filter``, IN -> IN   float32 pre-filters sized in micrometres (halos
``dog_filter``,                          from the physical sigma)
``white_tophat``
``plane_tile_median``,        IN -> IN   per-plane / per-tile median background
``remove_plane_background``
``estimate_channel_factor``,  IN -> IN   autofluorescence removal with a background channel
``channel_background``,
``channel_levels``                       (levels of both channels and the factor in one read)
``tile_stats``,               IN -> BS   per-plane / per-tile mean + k SD threshold (in a mask)
``tile_threshold``,
``local_threshold``                      local (Niblack / adaptive mean) threshold
``find_peaks``, ``peak_box``, IN -> LC   local maxima of a response inside a foreground;
``thin_peaks``                           the strongest within a distance in um
``split_seeds``               BS,LC->LC  seeds for touching objects without a maximum of their own
``shape_table``,              OS -> LC   volume, equivalent diameter, axes, elongation,
``shape_filter``                         sphericity in micrometres; shape filters
``pair_points``,              LC, LC     one-to-one matching in um; precision / recall / F1
``detection_scores``,                    overall and per region
``points_to_um``
``object_features``,          LC         candidate features, a cell classifier from
``train_classifier``,                    annotations, ``p_cell``/``is_cell`` columns
``classify_objects``,
``match_points``
============================  =========  ==========================================
"""

from voxelflow.ops._atlas import RC_COLUMNS, add_regions, assign_regions, count_by_region, region_volumes, rollup
from voxelflow.ops._bias import BIAS_METHODS, apply_bias_field, bias_fit_factors, estimate_bias_field
from voxelflow.ops._blobs import BLOB_METHODS, blob_detect
from voxelflow.ops._channel_background import channel_background, estimate_channel_factor
from voxelflow.ops._channel_levels import channel_levels
from voxelflow.ops._classify import (
    CellClassifier,
    classify_objects,
    feature_names,
    match_points,
    object_features,
    train_classifier,
)
from voxelflow.ops._counts import (
    COUNT_METHODS,
    centroid_voxels,
    count_labels_per_chunk,
    count_objects,
    count_per_block,
)
from voxelflow.ops._density import density_map
from voxelflow.ops._foreground import foreground
from voxelflow.ops._foreground_pass import foreground_objects, threshold_corrected
from voxelflow.ops._gaussian import dog_filter, gaussian, log_filter
from voxelflow.ops._label import label
from voxelflow.ops._local_threshold import TileStats, local_threshold, tile_stats, tile_threshold
from voxelflow.ops._masks import apply_negative_mask, upsample_mask
from voxelflow.ops._match import detection_scores, pair_points, points_to_um
from voxelflow.ops._model_mask import MASK_MODES, PerPlane, model_mask
from voxelflow.ops._normalize import percentile_range, rescale_intensity
from voxelflow.ops._objects import object_table
from voxelflow.ops._peaks import find_peaks, peak_box, thin_peaks
from voxelflow.ops._plane_background import plane_tile_median, remove_plane_background
from voxelflow.ops._predict import predict, resolve_halo
from voxelflow.ops._resample import DOWNSAMPLE_METHODS, affine_nearest, budget_factors, downsample, scale_nearest
from voxelflow.ops._resume import ChunkResults, pass_results, resumable_passes
from voxelflow.ops._shape import SHAPE_COLUMNS, shape_filter, shape_table
from voxelflow.ops._split import split_seeds
from voxelflow.ops._stitch import InstanceTiles, Matches, stitch
from voxelflow.ops._tables import filter_by_size, physical_coordinates
from voxelflow.ops._threshold import relative_threshold, threshold
from voxelflow.ops._tissue import auto_negative_mask
from voxelflow.ops._tophat import white_tophat
from voxelflow.ops._watershed import watershed_split

__all__ = [
    "BIAS_METHODS",
    "BLOB_METHODS",
    "COUNT_METHODS",
    "CellClassifier",
    "ChunkResults",
    "DOWNSAMPLE_METHODS",
    "InstanceTiles",
    "MASK_MODES",
    "Matches",
    "PerPlane",
    "RC_COLUMNS",
    "SHAPE_COLUMNS",
    "TileStats",
    "add_regions",
    "affine_nearest",
    "apply_bias_field",
    "bias_fit_factors",
    "apply_negative_mask",
    "assign_regions",
    "auto_negative_mask",
    "blob_detect",
    "budget_factors",
    "centroid_voxels",
    "channel_background",
    "channel_levels",
    "classify_objects",
    "count_by_region",
    "count_labels_per_chunk",
    "count_objects",
    "count_per_block",
    "density_map",
    "detection_scores",
    "dog_filter",
    "downsample",
    "estimate_bias_field",
    "estimate_channel_factor",
    "filter_by_size",
    "find_peaks",
    "foreground",
    "foreground_objects",
    "gaussian",
    "label",
    "local_threshold",
    "log_filter",
    "match_points",
    "model_mask",
    "object_features",
    "feature_names",
    "object_table",
    "pair_points",
    "pass_results",
    "peak_box",
    "percentile_range",
    "physical_coordinates",
    "plane_tile_median",
    "points_to_um",
    "predict",
    "region_volumes",
    "relative_threshold",
    "remove_plane_background",
    "rescale_intensity",
    "resolve_halo",
    "resumable_passes",
    "rollup",
    "scale_nearest",
    "shape_filter",
    "shape_table",
    "stitch",
    "split_seeds",
    "thin_peaks",
    "threshold",
    "threshold_corrected",
    "tile_stats",
    "tile_threshold",
    "train_classifier",
    "upsample_mask",
    "watershed_split",
    "white_tophat",
]
