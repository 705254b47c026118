"""Hoarding remediation (저장강박 주거환경개선): the flow in ``flow.py``."""
