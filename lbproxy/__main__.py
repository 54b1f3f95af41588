import sys

from lbproxy.cli import main

sys.exit(main())
