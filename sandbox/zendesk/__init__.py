"""The Zendesk Support API emulator (see `emulator.py` for the surface it serves)."""

from healthsync.sandbox.zendesk.emulator import ZendeskEmulator
from healthsync.sandbox.zendesk.params import ZendeskApiError, decode_cursor, encode_cursor

__all__ = ["ZendeskApiError", "ZendeskEmulator", "decode_cursor", "encode_cursor"]
