"""``python -m lite_plugins.model2vec distill --output DIR``: see :mod:`lite_plugins.model2vec.distill`."""

import sys

from lite_plugins.model2vec.distill import main

if __name__ == "__main__":
    sys.exit(main())
