# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the laddr role needs to know of the Laddr code in a virtualenv, in one run of its interpreter.

Run by tasks/upstream_fixes.yml as `<venv python> -c <this file's text> [missing-ok]`, with a JSON object on
stdin: {"laddr-<release>/<name>.patch": patch text} for every patch of the collection. Prints one JSON object:
  release, site  the installed distribution's version and the directory its files are relative to
                 ("" and "" when Laddr is not installed and missing-ok was given; otherwise that is an error)
  held           the patches for that release that the code holds (each one taken off in a dry run)
  fits           of the others, those that would apply to the code as it is (each one applied in a dry run)
Patches are tried in name order with GNU patch, -p1 in the site directory and no fuzz, as the role applies them.
Standard library only; changes nothing.
"""
import importlib.metadata
import json
import subprocess
import sys


def dry_run(site, text, direction):
    return subprocess.run(
        ["patch", "--silent", "--force", "--fuzz=0", "-p1", "-d", site, direction, "--dry-run"],
        input=text.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def main():
    texts = json.load(sys.stdin)
    try:
        found = importlib.metadata.distribution("laddr")
    except importlib.metadata.PackageNotFoundError:
        if "missing-ok" in sys.argv[1:]:
            print(json.dumps({"release": "", "site": "", "held": [], "fits": []}))
            return 0
        print(f"laddr is not installed for {sys.executable}", file=sys.stderr)
        return 1
    release, site = found.version, str(found.locate_file(""))
    prefix = f"laddr-{release}/"
    patches = {key[len(prefix):]: text for key, text in sorted(texts.items()) if key.startswith(prefix)}
    held = [name for name, text in patches.items() if dry_run(site, text, "--reverse")]
    fits = [name for name, text in patches.items() if name not in held and dry_run(site, text, "--forward")]
    print(json.dumps({"release": release, "site": site, "held": held, "fits": fits}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
