"""MCP servers for the tests, written with the ``mcp`` SDK; run over stdio or
streamable HTTP on 127.0.0.1."""
