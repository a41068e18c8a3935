"""Pure chunked algorithms on dask arrays and tables: no I/O, caching or display."""
