import re
from xml.etree import ElementTree

import pytest

from cases import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_bars_scale_to_a_nice_maximum_and_escape_labels():
    svg = charts.bars(
        ["<Mon>", "Tue"],
        [charts.Series("X & co", [10, 40])],
        title="Kept <per> day",
        desc="Two days",
    )
    root = parse(svg)  # well-formed: every text was escaped
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Kept <per> day"
    assert "&lt;Mon&gt;" in svg and "X &amp; co" in svg
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "chart-s0"]
    heights = [float(r.get("height")) for r in rects]
    plot_h = charts.HEIGHT - charts.TOP - charts.BOTTOM
    # 40 rounds up to a 50 top: 40 is 80% of the plot, 10 is 20%
    assert heights == pytest.approx([plot_h * 0.2, plot_h * 0.8], abs=0.05)
    assert float(rects[1].get("y")) == pytest.approx(charts.TOP + plot_h * 0.2, abs=0.05)


def test_lines_draw_one_point_per_label():
    svg = charts.lines(
        ["1", "2", "3"], [charts.Series("a", [0, 5, 10]), charts.Series("b", [1, 1, 1])], title="t", desc="d"
    )
    root = parse(svg)
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == 2
    points = [tuple(map(float, p.split(","))) for p in polylines[0].get("points").split()]
    assert [y for _, y in points] == [
        charts.HEIGHT - charts.BOTTOM,
        charts.TOP + (charts.HEIGHT - charts.TOP - charts.BOTTOM) / 2,
        charts.TOP,
    ]


def test_heat_map_shades_by_share_of_the_busiest_cell():
    cells = [[0] * 24 for _ in range(7)]
    cells[0][9] = 100
    cells[6][23] = 1
    svg = charts.heat_map(
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        [f"{h:02d}" for h in range(24)],
        cells,
        title="t",
        desc="d",
    )
    classes = [r.get("class") for r in parse(svg).iter(f"{SVG}rect")]
    assert len(classes) == 7 * 24
    assert classes[9] == "chart-heat5"
    assert classes[-1] == "chart-heat1"
    assert classes.count("chart-heat0") == 7 * 24 - 2


def test_empty_series_say_no_data():
    for svg in (
        charts.bars([], [], title="t", desc="d"),
        charts.lines(["a"], [charts.Series("s", [0])], title="t", desc="d"),
        charts.histogram(["<15m"], [0], title="t", desc="d"),
        charts.heat_map(["Mon"], ["00"], [[0]], title="t", desc="d"),
    ):
        assert re.search(r"<text[^>]*>No data</text>", svg)
        assert parse(svg).get("role") == "img"


def test_nice_max():
    assert [charts.nice_max(v) for v in (0, 1, 3, 7, 12, 40, 99, 260)] == [1, 1, 5, 10, 20, 50, 100, 500]
