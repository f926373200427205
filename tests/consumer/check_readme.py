#!/usr/bin/env python3
"""The readme_examples test: every region of tests/consumer/main.cpp between
"// README: <name> begin" and "// README: <name> end" must appear in README.md
verbatim (up to the region's common indentation), so the README's examples are
exactly the code the install_consumer test compiles and runs."""

import re
import sys
import textwrap
from pathlib import Path

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
source = (root / "tests/consumer/main.cpp").read_text()
readme = (root / "README.md").read_text()

regions = re.findall(r"^[ \t]*// README: ([\w-]+) begin\n(.*?)^[ \t]*// README: \1 end\n",
                     source, re.S | re.M)
if not regions:
    sys.exit("check_readme: no README regions found in tests/consumer/main.cpp")

failed = False
for name, body in regions:
    snippet = textwrap.dedent(body)
    if snippet not in readme:
        failed = True
        print(f"check_readme: README.md lacks region '{name}' of "
              f"tests/consumer/main.cpp; paste this:\n{snippet}")
    else:
        print(f"check_readme: '{name}' ok")
sys.exit(1 if failed else 0)
