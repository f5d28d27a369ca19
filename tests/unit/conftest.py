"""Pure tests of the plugins, where ansible-test units finds them: no root, no service, no lab.

Run by pytest from the repository (scripts/test, pytest -m unit) or by ansible-test units from the collection's
directory (.collections/ansible_collections/laddr/kafka); either way the plugins import as the collection's."""
import sys
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
