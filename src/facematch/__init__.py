__version__ = "0.1.0"

# Before torch allocates anything: keep large tensors in the heap instead of a fresh mmap each
# (see facematch.utils.allocator; FACEMATCH_MALLOC=0 turns it off).
from facematch.utils.allocator import tune as _tune_allocator

_tune_allocator()
