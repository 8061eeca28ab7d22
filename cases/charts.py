"""Server-rendered SVG charts: bars, lines, histogram and a 7x24 heat map.

Each function takes plain series and returns SVG markup (``SafeString``) that needs no script
and no inline style (CSP-clean: colours come from classes in ``static/css/caseline.css``).
Every chart is ``role="img"`` with a ``<title>`` and a ``<desc>`` for screen readers; the
report page puts the same figures in a table under each chart. Text is escaped here; an empty
series draws a chart that says "No data".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

WIDTH, HEIGHT = 640, 240
# Room for the axis labels: left (values), bottom (categories), top and right.
LEFT, BOTTOM, TOP, RIGHT = 44, 36, 12, 12
SERIES_CLASSES = 6  # chart-s0 .. chart-s5 in the stylesheet

_ids = count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            top = step * magnitude
            return int(top) if top == int(top) else top
    return 10 * magnitude  # pragma: no cover


def _fmt(number: float) -> str:
    """A coordinate with at most one decimal: stable output, small markup."""
    text = f"{number:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _open(title: str, desc: str, *, width: int = WIDTH, height: int = HEIGHT) -> tuple[str, list[str]]:
    n = next(_ids)
    title_id, desc_id = f"chart-t{n}", f"chart-d{n}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{title_id} {desc_id}">'
        f'<title id="{title_id}">{escape(title)}</title><desc id="{desc_id}">{escape(desc)}</desc>'
    )
    return head, []


def _close(head: str, parts: list[str]) -> SafeString:
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 - every text above is escaped


def _no_data(title: str, desc: str) -> SafeString:
    head, parts = _open(title, desc)
    parts.append(
        f'<text class="chart-empty" x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle">'
        f"{escape(_('No data'))}</text>"
    )
    return _close(head, parts)


def _value_axis(parts: list[str], top_value: float) -> None:
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(5):
        value = top_value * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" y1="{_fmt(y)}" x2="{WIDTH - RIGHT}" y2="{_fmt(y)}"/>'
            f'<text class="chart-tick" x="{LEFT - 4}" y="{_fmt(y + 4)}" text-anchor="end">'
            f"{escape(_fmt(value))}</text>"
        )


def _category_labels(parts: list[str], labels: Sequence[str], step_x: float, *, every: int = 1) -> None:
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + step_x * (i + 0.5)
        parts.append(
            f'<text class="chart-tick" x="{_fmt(x)}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )


def _legend(parts: list[str], series: Sequence[Series]) -> None:
    if len(series) < 2:
        return
    x = LEFT
    for i, s in enumerate(series):
        parts.append(
            f'<rect class="chart-s{i % SERIES_CLASSES}" x="{x}" y="{HEIGHT - 12}" width="10" height="10"/>'
            f'<text class="chart-tick" x="{x + 14}" y="{HEIGHT - 3}">{escape(s.name)}</text>'
        )
        x += 24 + 7 * len(s.name)


def _is_empty(series: Sequence[Series]) -> bool:
    return not series or all(not s.values or not any(s.values) for s in series)


def bars(labels: Sequence[str], series: Sequence[Series], *, title: str, desc: str) -> SafeString:
    """Grouped bars: one group per label, one bar per series in each group."""
    if not labels or _is_empty(series):
        return _no_data(title, desc)
    head, parts = _open(title, desc)
    top_value = nice_max(max(max(s.values, default=0) for s in series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step_x = plot_w / len(labels)
    bar_w = step_x * 0.8 / len(series)
    _value_axis(parts, top_value)
    for si, s in enumerate(series):
        for i, value in enumerate(s.values):
            h = plot_h * value / top_value
            x = LEFT + step_x * i + step_x * 0.1 + bar_w * si
            parts.append(
                f'<rect class="chart-s{si % SERIES_CLASSES}" x="{_fmt(x)}" y="{_fmt(TOP + plot_h - h)}" '
                f'width="{_fmt(bar_w)}" height="{_fmt(h)}"><title>{escape(labels[i])}, {escape(s.name)}: '
                f"{escape(_fmt(value))}</title></rect>"
            )
    _category_labels(parts, labels, step_x, every=max(1, len(labels) // 10))
    _legend(parts, series)
    return _close(head, parts)


def histogram(labels: Sequence[str], counts: Sequence[int], *, title: str, desc: str) -> SafeString:
    """Adjacent bars over ordered buckets (``labels`` name the buckets)."""
    return bars(labels, [Series(_("Cases"), counts)], title=title, desc=desc)


def lines(labels: Sequence[str], series: Sequence[Series], *, title: str, desc: str) -> SafeString:
    """One polyline per series over the labels (days), with a dot per point."""
    if not labels or _is_empty(series):
        return _no_data(title, desc)
    head, parts = _open(title, desc)
    top_value = nice_max(max(max(s.values, default=0) for s in series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step_x = plot_w / len(labels)
    _value_axis(parts, top_value)
    for si, s in enumerate(series):
        points = [
            (LEFT + step_x * (i + 0.5), TOP + plot_h - plot_h * value / top_value)
            for i, value in enumerate(s.values)
        ]
        css = f"chart-s{si % SERIES_CLASSES}"
        path = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
        parts.append(f'<polyline class="chart-line {css}" points="{path}"/>')
        for i, (x, y) in enumerate(points):
            parts.append(
                f'<circle class="{css}" cx="{_fmt(x)}" cy="{_fmt(y)}" r="2.5"><title>{escape(labels[i])}, '
                f"{escape(s.name)}: {escape(_fmt(s.values[i]))}</title></circle>"
            )
    _category_labels(parts, labels, step_x, every=max(1, len(labels) // 10))
    _legend(parts, series)
    return _close(head, parts)


def heat_map(
    rows: Sequence[str], columns: Sequence[str], cells: Sequence[Sequence[int]], *, title: str, desc: str
) -> SafeString:
    """A grid of cells shaded in five steps by value (``cells[row][column]``), e.g. 7 days x 24 hours."""
    if not rows or not columns or not any(any(row) for row in cells):
        return _no_data(title, desc)
    cell_w, cell_h, left, top = 24, 20, 44, 18
    width, height = left + cell_w * len(columns) + 4, top + cell_h * len(rows) + 4
    head, parts = _open(title, desc, width=width, height=height)
    peak = max(max(row) for row in cells)
    for ci, column in enumerate(columns):
        if ci % 3 == 0:
            parts.append(
                f'<text class="chart-tick" x="{left + cell_w * ci + cell_w // 2}" y="{top - 5}" '
                f'text-anchor="middle">{escape(column)}</text>'
            )
    for ri, row in enumerate(rows):
        y = top + cell_h * ri
        parts.append(
            f'<text class="chart-tick" x="{left - 4}" y="{y + cell_h - 6}" text-anchor="end">{escape(row)}</text>'
        )
        for ci, value in enumerate(cells[ri]):
            # 0 for empty cells, then 1..5 by share of the busiest cell.
            step = 0 if not value else min(5, 1 + int(5 * value / (peak + 1)))
            parts.append(
                f'<rect class="chart-heat{step}" x="{left + cell_w * ci}" y="{y}" width="{cell_w - 1}" '
                f'height="{cell_h - 1}"><title>{escape(row)} {escape(columns[ci])}: {value}</title></rect>'
            )
    return _close(head, parts)


def sparkline(values: Sequence[float], *, title: str, width: int = 120, height: int = 24) -> SafeString:
    """A small line of ``values`` (oldest first) for a table cell: no axes, the last point marked.

    Sized by attributes, not style (CSP); ``title`` names it for screen readers and hover.
    """
    n = next(_ids)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart sparkline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="chart-t{n}">'
        f'<title id="chart-t{n}">{escape(title)}</title>'
    )
    if not values:
        return _close(head, [])
    top = max(values) or 1
    step = (width - 4) / max(1, len(values) - 1)
    points = [(2 + step * i, height - 2 - (height - 4) * value / top) for i, value in enumerate(values)]
    path = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
    last_x, last_y = points[-1]
    return _close(
        head,
        [
            f'<polyline class="chart-line chart-s0" points="{path}"/>',
            f'<circle class="chart-s0" cx="{_fmt(last_x)}" cy="{_fmt(last_y)}" r="2"/>',
        ],
    )
