"""What every framework integration promises: no framework is imported by `import
sem_mem` or anywhere outside sem_mem/integrations/, a missing extra is named in the
error, and each example in examples/ runs offline."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, python_env, run_python

FRAMEWORKS = ("langgraph", "langchain", "langchain_core", "langmem", "agents", "pydantic_ai")


def test_import_sem_mem_imports_no_framework() -> None:
    code = f"""
import sys
import sem_mem, sem_mem.integrations
from sem_mem import SemanticMemory  # noqa
import sem_mem.async_core  # noqa
import sem_mem.server, sem_mem.cli  # the other edges do not pull them in either
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {FRAMEWORKS!r})
print(loaded)
"""
    assert run_python(code).stdout.strip() == "[]"


def test_no_framework_import_outside_integrations() -> None:
    offenders = []
    for path in (ROOT / "sem_mem").rglob("*.py"):
        if "integrations" in path.relative_to(ROOT / "sem_mem").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("langgraph", "langgraph", "langgraph"),
        ("openai_agents", "agents", "openai-agents"),
        ("pydantic_ai", "pydantic_ai", "pydantic-ai"),
    ],
)
def test_a_missing_framework_names_its_extra(module: str, blocked: str, extra: str) -> None:
    code = f"""
import sys
sys.modules[{blocked!r}] = None  # as if the package were not installed
try:
    import sem_mem.integrations.{module}
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    out = run_python(code).stdout
    assert out.startswith("ConfigurationError") and f"sem-mem[{extra}]" in out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("langgraph_store.py", ["-> my sister Maya lives in Lisbon", "('memories', 'bob')"]),
        ("openai_agents_session.py", ["function_call_output", "[kitchen-chat]"]),
        ("pydantic_ai_memory.py", ["tools offered: remember, recall, forget", "Lisbon"]),
    ],
)
def test_examples_run_offline(example: str, expected: list[str], tmp_path: Path) -> None:
    """Each example runs with local embeddings and no key, twice (the second run reads
    what the first one stored, and must not fail on it)."""
    env = python_env()
    env["MEMORY_STORAGE_DIR"] = str(tmp_path / "store")
    env.pop("OPENAI_API_KEY", None)
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "examples" / example)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        for line in expected:
            assert line in proc.stdout, proc.stdout
    assert os.listdir(tmp_path / "store")  # it really used the store it was given
