"""CSV for reports: a header line (always, so an empty report is still a CSV file), then one line
per row of the report's ``rows``. The view names the columns in ``csv_header``. Cells are
written as the desk's downloads write them (``cases.exports.safe_cell``: formula-like text
defused). A report is a few aggregate rows, so it is built in memory."""

from __future__ import annotations

import csv
import io

from rest_framework.renderers import BaseRenderer

from cases.exports import safe_cell


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        view = (renderer_context or {}).get("view")
        header = list(getattr(view, "csv_header", ()))
        rows = data.get("rows", []) if isinstance(data, dict) else []
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=header or list(rows[0]) if rows else header, lineterminator="\r\n"
        )
        writer.writeheader()
        writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
        return out.getvalue().encode(self.charset)
