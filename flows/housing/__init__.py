"""Housing support (주거지원): the flow in ``flow.py``."""
