"""`python cli.py ...` runs the same command line as the `netpol` console script."""

import sys

from recommender.cli.parser import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
