"""The run report: numbers (report.json), plots (PNG) and a self-contained page (index.html)."""

from curation.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
