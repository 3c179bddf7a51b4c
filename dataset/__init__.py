"""The matting dataset on disk: ids, PNG files, the writer, verify, statistics and sheets.

``store`` holds the writer / reader / verify / stats; ``imagefiles`` the checked PNG I/O;
``sheet`` the contact sheets; ``backgrounds`` folders of background pictures.
"""
from .store import *  # noqa: F401,F403 - the package's public names
from .store import LOCK_NAME, META_DIR, REJECTED_DIR, __all__  # noqa: F401 - layout names
