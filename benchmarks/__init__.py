"""Benchmarks of isales-async against raw aiohttp and a requests thread pool; ``python -m benchmarks``."""
