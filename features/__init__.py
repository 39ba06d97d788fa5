"""Pure rolling per-user features in event time (imports `stream.contract.events` only)."""

from churnstream.features.config import FeatureConfig
from churnstream.features.names import FEATURE_NAMES
from churnstream.features.state import Applied, UserState

__all__ = ["FEATURE_NAMES", "Applied", "FeatureConfig", "UserState"]
