"""`python -m keras_attn COMMAND ...` runs the `keras-attn` command line (the same parser, output
and exit status as the console script, whose parser lives in the top-level `keras_attn_cli`)."""

import sys

from keras_attn_cli import main

if __name__ == "__main__":
    sys.exit(main())
