"""Partner programmes for a complex (마음건강 교육, 나들이, 문화활동, 식사 지원, 행사): the flow in ``flow.py``."""
