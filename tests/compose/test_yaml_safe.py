"""Safe YAML loading: plain types only, YAML 1.2 scalars, and hard limits."""

import contextlib
import os
import tracemalloc

import pytest

from apps.compose import ComposeError, Limits, yaml_safe
from apps.compose.yaml_safe import safe_load


@pytest.fixture(autouse=True, params=["libyaml", "pure"])
def loader(request, monkeypatch):
    """Every test runs with both parsers: libyaml when present, PyYAML's own otherwise."""
    if request.param == "pure":
        monkeypatch.setattr(yaml_safe, "_SafeLoader", yaml_safe._PureLoader)
    return request.param


def refused(text, **kwargs) -> str:
    with pytest.raises(ComposeError) as info:
        safe_load(text, **kwargs)
    return str(info.value)


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


class TestScalars:
    def test_yaml_1_2_core_schema(self):
        data = safe_load("a: yes\nb: no\nc: on\nd: true\ne: False\nf: ~\ng: null\nh:\n")
        assert data == {
            "a": "yes",
            "b": "no",
            "c": "on",
            "d": True,
            "e": False,
            "f": None,
            "g": None,
            "h": None,
        }

    def test_port_pairs_stay_strings_not_base_60(self):
        assert safe_load("- 22:22\n- 80:80") == ["22:22", "80:80"]

    def test_numbers(self):
        data = safe_load("a: 010\nb: 0o17\nc: 0x1f\nd: -5\ne: 1.5\nf: .inf\ng: 1e3\nh: +7")
        assert data == {
            "a": 10,
            "b": 15,
            "c": 31,
            "d": -5,
            "e": 1.5,
            "f": float("inf"),
            "g": 1000.0,
            "h": 7,
        }

    def test_dates_stay_strings(self):
        assert safe_load("d: 2024-01-31") == {"d": "2024-01-31"}

    def test_quoted_and_explicit_str(self):
        assert safe_load("a: 'true'\nb: !!str 12") == {"a": "true", "b": "12"}

    def test_empty_document_is_none(self):
        assert safe_load("") is None
        assert safe_load("# only a comment\n") is None

    def test_bytes_with_bom(self):
        assert safe_load("\ufeffa: 1".encode()) == {"a": 1}


class TestMergeKeys:
    def test_merge_and_override(self):
        data = safe_load("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
        assert data["thing"] == {"x": 1, "y": 3}

    def test_merge_list(self):
        data = safe_load("a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}")
        assert data["c"] == {"x": 1, "y": 2, "z": 3}

    def test_chained_merges_do_not_look_like_duplicates(self):
        text = "a: &a {p: false}\nb: &b\n  <<: *a\n  p: true\nc:\n  <<: *b\n"
        assert safe_load(text)["c"] == {"p": True}

    def test_merge_of_non_mapping_is_refused(self):
        assert "invalid YAML" in refused("a: &a [1]\nb: {<<: *a}")


class TestRefusedConstructs:
    def test_duplicate_keys(self):
        assert "duplicate key 'a'" in refused("a: 1\na: 2")

    def test_nested_duplicate_keys(self):
        assert "duplicate key 'privileged'" in refused(
            "services:\n  web:\n    privileged: false\n    privileged: true\n"
        )

    def test_duplicate_keys_differently_written(self):
        assert "duplicate key" in refused("1: a\n0x1: b")

    @pytest.mark.parametrize(
        "text",
        [
            "!!python/object/apply:os.system ['true']",
            "a: !!python/name:os.system",
            "a: !!binary aGVsbG8=",
            "a: !!set {x, y}",
            "a: !!timestamp 2001-12-14",
            "a: !!omap [x: 1]",
            "a: !custom value",
            "a: !<tag:example.com,2000:x> 1",
        ],
    )
    def test_custom_and_non_plain_tags(self, text):
        assert "could not determine a constructor" in refused(text)

    @pytest.mark.parametrize(
        "text",
        [
            "a: !!bool maybe",
            "a: !!bool yes",
            "a: !!int abc",
            "a: !!int +-1",
            "a: !!int 0x",
            "a: !!float x",
            "a: !!seq x",
            "a: !!map x",
            "a: !!str [1]",
            "a: !!int [1]",
            "a: !!bool {a: 1}",
            "a: !!null [1]",
            "!!map [1]",
            "a: !!merge x",
            "<<: !!str x",
            "? !!merge x\n: y",
        ],
    )
    def test_standard_tags_on_the_wrong_value(self, text):
        assert "invalid YAML" in refused(text)

    def test_standard_tags_on_the_right_value(self):
        data = safe_load("a: !!bool True\nb: !!int 1_000\nc: !!float .INF\nd: !!null x")
        assert data == {"a": True, "b": 1000, "c": float("inf"), "d": None}

    def test_non_scalar_keys(self):
        assert "mapping keys must be plain scalars" in refused("? [1, 2]\n: x")
        assert "mapping keys must be plain scalars" in refused("? {a: 1}\n: x")

    def test_multiple_documents(self):
        assert "invalid YAML" in refused("a: 1\n---\nb: 2\n")

    def test_syntax_error_names_line(self):
        assert "line 2" in refused("a: 1\nb: c: d\n")

    def test_undefined_alias(self):
        assert "undefined alias" in refused("a: *nope")

    def test_recursive_alias(self):
        assert "recursive alias" in refused("a: &a [1, *a]")
        assert "recursive alias" in refused("a: &a {b: *a}")

    def test_huge_integer(self):
        assert "invalid YAML" in refused("a: " + "9" * 5000)


class TestLimits:
    def test_billion_laughs_fails_fast_and_small(self):
        # Time is measured by tests/perf/bench_compose_hostile.py, not asserted here.
        tracemalloc.start()
        message = refused(billion_laughs())
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert "expands to more than" in message
        assert peak < 10 * 1024 * 1024

    def test_quadratic_blowup_of_one_large_anchor(self):
        big = "[" + ", ".join(["x"] * 5000) + "]"
        text = f"a: &a {big}\nb: [" + ", ".join(["*a"] * 50) + "]"
        assert "expands to more than" in refused(text)

    def test_small_aliases_are_fine(self):
        assert safe_load(billion_laughs(levels=3, width=3))["a2"][0] == ["lol"] * 3

    def test_node_budget_is_configurable(self):
        assert "expands" in refused("[1, 2, 3, 4]", limits=Limits(max_nodes=4))
        assert safe_load("[1, 2, 3]", limits=Limits(max_nodes=4)) == [1, 2, 3]

    def test_deep_flow_nesting(self, loader):
        assert "nesting deeper than 32" in refused("[" * 10000 + "]" * 10000)

    def test_deep_nesting_at_the_size_limit(self, loader):
        assert "nesting deeper than 32" in refused("{a: " * 60000)

    def test_deep_block_nesting(self):
        text = "".join(f"{'  ' * level}k{level}:\n" for level in range(40))
        assert "nesting deeper than 32" in refused(text)

    def test_depth_boundary(self):
        assert safe_load("[" * 32 + "]" * 32) is not None
        assert "nesting" in refused("[" * 33 + "]" * 33)

    def test_depth_through_aliases(self):
        text = "a: &a " + "[" * 30 + "]" * 30 + "\nb: [[[[*a]]]]"
        assert "through an alias" in refused(text)

    def test_file_size(self):
        text = "a: " + "x" * (256 * 1024)
        assert "larger than 256 KiB" in refused(text)
        assert "larger than 256 KiB" in refused(text.encode())

    def test_multibyte_characters_count_as_bytes(self):
        text = "a: " + "é" * (130 * 1024)
        assert "larger than 256 KiB" in refused(text)

    def test_size_is_configurable(self):
        assert "larger than 1 KiB" in refused("a: " + "x" * 2000, limits=Limits(max_bytes=1024))

    def test_large_valid_file_parses(self):
        lines = [f"k{i}: [a, b, {{c: d}}]" for i in range(2000)]
        text = "\n".join(lines)
        assert len(text) < 256 * 1024
        assert len(safe_load(text)) == 2000


class TestJunk:
    @pytest.mark.parametrize(
        "data",
        [
            b"\xff\xfe\x00\x01",
            b"\x89PNG\r\n\x1a\n\x00\x00",
            b"\xc3\x28",
            "a: \x00",
            "\x07bell",
            "a: \ud800",
        ],
    )
    def test_binary_junk(self, data):
        refused(data)

    def test_random_bytes(self):
        for seed in range(200):
            data = os.urandom(64 + seed)
            with contextlib.suppress(ComposeError):
                safe_load(data)

    def test_not_text(self):
        assert "must be text" in refused(12345)
