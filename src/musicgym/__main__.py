import sys

from musicgym.cli import main

sys.exit(main())
