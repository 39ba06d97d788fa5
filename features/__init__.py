"""Pure rolling per-user features in event time (imports `stream.events` only)."""

from features.config import FeatureConfig
from features.names import FEATURE_NAMES
from features.state import Applied, UserState

__all__ = ["FEATURE_NAMES", "Applied", "FeatureConfig", "UserState"]
