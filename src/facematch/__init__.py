__version__ = "0.1.0"

# Importing facematch changes nothing in the process: the entry points (facematch-train, facematch-eval, the
# cli mains, facematch-app) tune the allocator themselves (facematch.utils.allocator.tune).
