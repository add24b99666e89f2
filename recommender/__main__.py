"""``python -m recommender`` (and ``spark-submit recommender/__main__.py``) runs the
``netpol`` command line."""

import sys

from recommender.cli.parser import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
