"""Configuration: typed settings, the YAML loader with `${ENV}` secrets, and the shipped presets."""

from healthsync.config.catalog import presets_dir, resolve_preset_path

__all__ = ["presets_dir", "resolve_preset_path"]
