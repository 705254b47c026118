"""Job placement (일자리 연계): the flow in ``flow.py``."""
