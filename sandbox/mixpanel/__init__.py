"""The Mixpanel emulator (see `emulator.py` for the surface it serves)."""

from healthsync.sandbox.mixpanel.emulator import MixpanelEmulator
from healthsync.sandbox.mixpanel.where import WhereError, compile_where

__all__ = ["MixpanelEmulator", "WhereError", "compile_where"]
