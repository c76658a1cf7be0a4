"""Tests of cross/elfcheck.py: the static check and the size budget.

Run: python3 -m unittest discover -s cross -p 'test_*.py'
"""

import io
import os
import shutil
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

import elfcheck

BUSYBOX = "/bin/busybox"  # Debian's busybox-static: a static x86_64 ELF


@unittest.skipUnless(os.path.exists(BUSYBOX), f"needs a static {BUSYBOX} (busybox-static)")
class ElfcheckTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.husk = os.path.join(self.dir, "husk")
        shutil.copy(BUSYBOX, self.husk)
        self.size = os.path.getsize(self.husk)
        self.saved = dict(elfcheck.BUDGETS)

    def tearDown(self):
        elfcheck.BUDGETS.clear()
        elfcheck.BUDGETS.update(self.saved)
        shutil.rmtree(self.dir)

    def run_check(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = elfcheck.main(list(args))
        return rc, out.getvalue(), err.getvalue()

    def test_a_static_binary_within_its_budget_passes(self):
        elfcheck.BUDGETS[("x86_64", "husk")] = self.size
        rc, out, err = self.run_check(f"x86_64={self.husk}")
        self.assertEqual(rc, 0, err)
        self.assertIn("100% of", out)

    def test_a_binary_over_its_budget_fails_naming_both_sizes(self):
        elfcheck.BUDGETS[("x86_64", "husk")] = self.size - 1
        rc, _, err = self.run_check(f"x86_64={self.husk}")
        self.assertEqual(rc, 1)
        self.assertIn(f"{self.size:,} bytes, over its budget of {self.size - 1:,} bytes by 1", err)

    def test_the_wrong_machine_fails(self):
        rc, _, err = self.run_check(f"aarch64={self.husk}")
        self.assertEqual(rc, 1)
        self.assertIn("expected 183 for aarch64", err)

    def test_the_armv7_budget_is_one_mib(self):
        self.assertEqual(elfcheck.BUDGETS[("armv7", "husk")], 1 << 20)


if __name__ == "__main__":
    unittest.main()
