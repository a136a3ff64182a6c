"""The frontend's jest unit tests (src/__tests__: API client, model and polling, components), run by pytest
so that the README's one test command covers them.

Every jest test must run and pass: the count jest reports (its --json report) is checked against the
number of test calls written in the spec files, counted here, so a suite that fails to load, a skipped
or `todo` test, or a test jest never found makes this fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

# A test call: it(…), test(…), it.skip(…), it.each(…)(…), … but not a method such as /re/.test(s).
TEST_CALL = re.compile(r"(?<![\w.$])(?:it|test)(?:\.(?:only|skip|each|todo|concurrent|failing))*\s*\(")
COMMENTS = re.compile(r"/\*.*?\*/|^\s*//.*?$", re.S | re.M)


def _jlpm(*args: str, timeout: int) -> subprocess.CompletedProcess:
    jlpm = shutil.which("jlpm")
    assert jlpm, (
        "jlpm (from jupyter-builder, a JupyterLab dependency) is not on PATH; reinstall with pip install -e '.[test]'"
    )
    return subprocess.run([jlpm, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def spec_files() -> list[Path]:
    """The jest spec files under src/: *.test.ts, *.spec.ts, and any .ts file in a __tests__ folder."""
    src = REPO / "src"
    found = {*src.rglob("*.test.ts"), *src.rglob("*.spec.ts"), *src.rglob("__tests__/**/*.ts")}
    return sorted(found)


def written_tests(path: Path) -> int:
    """How many test calls a spec file holds (comments left out)."""
    return len(TEST_CALL.findall(COMMENTS.sub("", path.read_text(encoding="utf-8"))))


def test_the_test_call_count_sees_what_jest_would_run():
    source = """
    describe('x', () => {
      it('a', () => expect(/b/.test('b')).toBe(true));
      test('c', async () => undefined);
      it.skip('d', () => undefined);
      it.each([1, 2])('e %i', n => expect(n).toBeGreaterThan(0));
      // it('commented out', () => undefined);
      /* test('in a block comment', () => undefined); */
      submit('not a test');
    });
    """
    assert len(TEST_CALL.findall(COMMENTS.sub("", source))) == 4


def test_every_jest_unit_test_runs_and_passes(tmp_path):
    if not (
        REPO / "node_modules" / ".bin" / "jest"
    ).exists():  # pip's build step installs them; a bare clone may not have
        installed = _jlpm("install", timeout=600)
        assert installed.returncode == 0, installed.stdout[-3000:]
    files = {p: written_tests(p) for p in spec_files()}
    written = sum(files.values())
    assert written > 0, f"no jest test calls found under {REPO / 'src'}"
    report_file = tmp_path / "jest.json"
    # forceExit: no open handle may hang CI
    out = _jlpm("jest", "--ci", "--runInBand", "--forceExit", "--json", "--outputFile", str(report_file), timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    counts = {
        k: report[k]
        for k in (
            "numTotalTests",
            "numPassedTests",
            "numFailedTests",
            "numPendingTests",
            "numTodoTests",
            "numRuntimeErrorTestSuites",
        )
    }
    assert report["success"] and counts["numFailedTests"] == 0 and counts["numRuntimeErrorTestSuites"] == 0, counts
    assert counts["numPendingTests"] == 0 and counts["numTodoTests"] == 0, f"skipped or todo jest tests: {counts}"
    assert counts["numPassedTests"] == counts["numTotalTests"], counts
    assert counts["numTotalTests"] >= written, (
        f"jest ran {counts['numTotalTests']} tests but the spec files hold {written} test calls: {counts}"
    )
    ran = {Path(r["name"]).resolve() for r in report["testResults"]}
    missed = sorted(str(p.relative_to(REPO)) for p, n in files.items() if n and p.resolve() not in ran)
    assert not missed, f"spec files jest did not run (see testRegex in jest.config.js): {missed}"
