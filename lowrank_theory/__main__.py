import sys

from lowrank_theory.cli import main

sys.exit(main())
