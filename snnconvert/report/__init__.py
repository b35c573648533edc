"""Formatting of results handed in by the commands: rich tables, CSV/Markdown, plots."""
