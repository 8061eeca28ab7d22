"""CSV for reports: a header line (always, so an empty report is still a CSV file), then one line
per row of the report's ``rows``. The view names the columns in ``csv_header``."""

from __future__ import annotations

import csv
import io

from rest_framework.renderers import BaseRenderer


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
        writer.writerows(rows)
        return out.getvalue().encode(self.charset)
