"""Convention readers: one module per instrumentation convention, each exposing `Convention` objects.

The order in which conventions are consulted for each field lives in `mapping.precedence`.
"""
