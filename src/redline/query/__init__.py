"""SQL over run logs with DuckDB."""
