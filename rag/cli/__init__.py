"""The `rag` command line: parse options, call one library function, print."""
