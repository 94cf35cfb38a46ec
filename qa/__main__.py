import sys

from qa.tools.cli import main

sys.exit(main())
