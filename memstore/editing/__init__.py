"""MEMIT: requests, z-vectors, keys, statistics, the solve, apply."""
from .apply import apply_updates, build_state, unapply_updates
from .memit import default_settings, execute_memit
from .requests import Request, validate_requests
from .result import EditResult, LayerUpdate
from .settings import EditSettings

__all__ = [
           "EditResult",
           "EditSettings",
           "LayerUpdate",
           "Request",
           "apply_updates",
           "build_state",
           "default_settings",
           "execute_memit",
           "unapply_updates",
           "validate_requests",
]
