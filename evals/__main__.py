"""``python -m evals``: see ``evals.cli``."""

from evals.cli import main

if __name__ == "__main__":
    main()
