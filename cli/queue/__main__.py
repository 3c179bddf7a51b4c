"""``python -m comfyui_ld_portrait.cli.queue``: the queue command on its own."""
import sys

from .command import main

sys.exit(main())
