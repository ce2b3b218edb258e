"""larcv I/O: readers per file format, parsers from products to arrays, collate, dataset."""
