"""``python -m maxpo.lab``: see :mod:`maxpo.lab.cli`."""
from maxpo.lab.cli import main

raise SystemExit(main())
