"""What a trained cell classifier is: the shared definition of the classifier ops and the classifier files.

No file access here: :mod:`voxelflow.ops` trains and applies a
:class:`CellClassifier`, :mod:`voxelflow.io.classifier` writes and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError

__all__ = ["CellClassifier", "training_versions"]


@dataclass
class CellClassifier:
    """A trained cell / not-cell classifier and what it needs to be applied.

    Attributes
    ----------
    estimator : sklearn.ensemble.RandomForestClassifier
    features : list of str
        Feature columns, in the order the estimator was fitted on.
    versions : dict
        Versions of scikit-learn, numpy and voxelflow it was trained with.
    threshold : float
        ``is_cell`` is ``p_cell >= threshold``.
    cv_score : float or None
        Mean cross-validated balanced accuracy on the training annotations.
    n_train : dict
        Number of training objects per class (``cell``, ``not_cell``).
    radius_um : float or None
        Half side of the cube around each object the features were computed
        in (``object_features(radius_um=...)``); features for this classifier
        must use the same. None when not recorded.
    """

    estimator: object
    features: list
    versions: dict = field(default_factory=dict)
    threshold: float = 0.5
    cv_score: float | None = None
    n_train: dict = field(default_factory=dict)
    radius_um: float | None = None

    def p_cell(self, features: pd.DataFrame) -> np.ndarray:
        """Probability of being a cell for each row of ``features`` (float64, shape (n,))."""
        missing = [f for f in self.features if f not in features.columns]
        if missing:
            raise InvalidInputError(
                f"the classifier was trained on features {self.features}; these are missing: {missing}"
            )
        if len(features) == 0:
            return np.zeros(0)
        x = features[self.features].to_numpy(np.float64, copy=True)
        x[~np.isfinite(x)] = np.nan
        column = list(self.estimator.classes_).index(1)
        return self.estimator.predict_proba(x)[:, column]


def training_versions() -> dict:
    """Versions of scikit-learn, numpy and voxelflow (recorded with a trained classifier)."""
    import sklearn

    import voxelflow

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "voxelflow": getattr(voxelflow, "__version__", "unknown")}
