"""``python -m facematch.eval``."""

from facematch.eval.run import main

if __name__ == "__main__":  # guarded: spawned DataLoader workers re-import the main module
    main()
