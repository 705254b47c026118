"""Linkage (연계): refer a resident to any agency type for a named service."""
