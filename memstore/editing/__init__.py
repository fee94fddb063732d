"""MEMIT: requests, z-vectors, keys, statistics, the solve, apply."""
from .apply import apply_updates, build_state, unapply_updates
from .memit import default_settings, execute_memit
from .requests import Request, validate_requests
from .result import EditResult, LayerUpdate
from .settings import EditSettings

__all__ = ["Request", "validate_requests", "EditSettings", "EditResult", "LayerUpdate",
           "execute_memit", "default_settings", "apply_updates", "unapply_updates", "build_state"]
