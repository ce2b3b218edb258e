"""Analysis: per-event CSVs, summaries, plots and event displays."""
