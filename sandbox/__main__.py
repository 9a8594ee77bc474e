import sys

from jobops.cli import main

raise SystemExit(main(["sandbox", *sys.argv[1:]]))
