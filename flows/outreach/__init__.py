"""Outreach / safety check (안부확인, 고독사 예방): the flow in ``flow.py``."""
