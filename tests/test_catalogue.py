"""One catalogue names every flow: prefect.yaml deploys exactly it, and each flow carries its name."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect import Flow

from registry.interventions import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_deploys_the_catalogue_and_every_flow_is_named_for_it() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert [(d["name"], d["entrypoint"]) for d in deployments] == [(e.name, e.entrypoint) for e in CATALOGUE]
    for entry in CATALOGUE:
        flow = getattr(importlib.import_module(entry.module), entry.function)
        assert isinstance(flow, Flow) and flow.name == entry.name, entry
        assert (ROOT / entry.entrypoint.split(":")[0]).is_file()
    assert len({e.name for e in CATALOGUE}) == len(CATALOGUE)
