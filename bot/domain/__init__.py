"""Domain rules: the service catalog, the request lifecycle, routing along the ladder."""
