"""Regressions found by a new user trying skminer (one test per finding, each failing before its fix)."""

from __future__ import annotations

import pytest

from skminer.config import ConfigError, load_config


def test_duplicate_yaml_key_is_refused_naming_it(tmp_path):
    # PyYAML keeps the last of two equal keys silently: the analysis would run with seed 2 and method carl
    # although the file also says seed 1.
    path = tmp_path / "analysis.yaml"
    path.write_text("seed: 1\ntraining:\n  method: carl\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"(?s)analysis\.yaml.*duplicate key 'seed' \(first at line 1\)"):
        load_config(path)


def test_duplicate_nested_yaml_key_is_refused(tmp_path):
    path = tmp_path / "analysis.yaml"
    path.write_text("training:\n  method: carl\n  params: {max_epochs: 2, max_epochs: 3}\n")
    with pytest.raises(ConfigError, match="duplicate key 'max_epochs'"):
        load_config(path)


def test_merge_key_may_still_be_overridden(tmp_path):
    # YAML merge keys ("<<: *base") are meant to be overridden by explicit keys: not a duplicate.
    path = tmp_path / "analysis.yaml"
    path.write_text("benchmarks:\n  a: &base {theta1: 0.5, theta2: 0.0}\n  b: {<<: *base, theta2: 0.5}\n")
    config = load_config(path)
    assert dict(config["benchmarks"]["b"]) == {"theta1": 0.5, "theta2": 0.5}
