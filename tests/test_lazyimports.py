"""securesystemslib's optional signer backends stay out of start-up (repotool/lazyimports.py).

Each check runs in a fresh interpreter: what is imported depends on what ran before.
boto3 (test extra) stands for the backends; hvac is not installed and stays missing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_python_tuf_import_does_not_run_boto3() -> None:
    pytest.importorskip("boto3")
    out = _run("""
        import sys
        import repotool
        import tuf.ngclient
        print("boto3" in sys.modules, "boto3.session" in sys.modules,
              "botocore.session" in sys.modules)
    """)
    assert out == "True False False"


def test_lazy_backend_still_counts_as_installed_and_works_on_use() -> None:
    pytest.importorskip("boto3")
    out = _run("""
        import repotool
        import tuf.api.metadata
        from securesystemslib.signer import _aws_signer
        import boto3
        print(_aws_signer.AWS_IMPORT_ERROR, boto3.session.Session.__name__)
    """)
    assert out == "None Session"


def test_missing_backend_stays_missing() -> None:
    try:
        import hvac  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - depends on the machine
        pytest.skip("hvac is installed here")
    out = _run("""
        import repotool
        import tuf.api.metadata
        from securesystemslib.signer import _vault_signer
        print(_vault_signer.VAULT_IMPORT_ERROR is not None)
    """)
    assert out == "True"


def test_other_imports_are_untouched() -> None:
    pytest.importorskip("boto3")
    out = _run("""
        import sys
        import repotool
        import botocore.session
        print(type(sys.modules["botocore.session"]).__name__)
    """)
    assert out == "module"
