"""Damaged bags into the reader and `stf bag info`: files cut anywhere, bytes flipped in the
MCAP data or in metadata.yaml, metadata that lists paths out of the bag. The reader reads
what is readable and names the rest in `problems`, or raises BagError; nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stf_nodes.bag.metadata import METADATA_FILE, BagError
from stf_nodes.bag.reader import BagReader
from tests.bag.conftest import write_sample_bag
from tests.conftest import stf
from tests.fuzz.common import CASES, FUZZ, HOSTILE_TEXT

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('bag') / 'sample'
    write_sample_bag(path, count=60)
    return path


def read_all(path: Path) -> None:
    """Everything a user of the reader does: info, every message, a seek."""
    try:
        with BagReader(path) as bag:
            bag.info()
            count = sum(1 for _ in bag.messages())
            assert count <= bag.message_count or bag.problems
            bag.last_messages(list(bag.topics), bag.end_ns)
            assert all(isinstance(problem, str) for problem in bag.problems)
    except BagError as exc:
        assert str(exc)


def damaged_copy(
    sample: Path, target: Path, name: str, cut: int, flips: list[tuple[int, int]]
) -> Path:
    shutil.copytree(sample, target)
    victim = target / name
    data = bytearray(victim.read_bytes())
    for index, mask in flips:
        data[index % len(data)] ^= mask
    victim.write_bytes(bytes(data[: cut % (len(data) + 1)]))
    return target


cuts = st.integers(0, 1 << 20)
flips = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), max_size=6)


@FUZZ
@given(cut=cuts, flips=flips, which=st.sampled_from(['mcap', METADATA_FILE]))
def test_cut_and_corrupted_bags(
    sample_bag: Path,
    tmp_path_factory: pytest.TempPathFactory,
    cut: int,
    flips: list[tuple[int, int]],
    which: str,
) -> None:
    name = next(sample_bag.glob('*.mcap')).name if which == 'mcap' else METADATA_FILE
    read_all(damaged_copy(sample_bag, tmp_path_factory.mktemp('bag') / 'b', name, cut, flips))
    CASES[f'bags: {which}'] += 1


@FUZZ
@given(data=st.binary(max_size=400).map(lambda b: b'\x89MCAP0\r\n' + b))
def test_random_mcap_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp('mcap') / 'x.mcap'
    path.write_bytes(data)
    read_all(path)
    CASES['bags: random mcap'] += 1


def test_metadata_paths_out_of_the_bag_are_not_followed(sample_bag: Path, tmp_path: Path) -> None:
    bag = tmp_path / 'b'
    shutil.copytree(sample_bag, bag)
    outside = tmp_path / 'outside.mcap'
    shutil.copy(next(bag.glob('*.mcap')), outside)
    metadata = yaml.safe_load((bag / METADATA_FILE).read_text())
    info = metadata['rosbag2_bagfile_information']
    for name in ('../outside.mcap', str(outside), '/etc/passwd', '..', *HOSTILE_TEXT[:8]):
        info['relative_file_paths'] = [name]
        info['files'][0]['path'] = name
        (bag / METADATA_FILE).write_text(yaml.safe_dump(metadata))
        with BagReader(bag) as reader:
            assert reader.files == sorted(bag.glob('*.mcap'))  # only the bag's own file
            if '/' in name or name == '..':
                assert any('not a file name in the bag' in p for p in reader.problems), name
        CASES['bags: hostile paths'] += 1


def test_stf_bag_info_on_a_damaged_bag(sample_bag: Path, tmp_path: Path) -> None:
    mcap = next(sample_bag.glob('*.mcap')).name
    for target, name, cut in (
        (tmp_path / 'cut', mcap, 700),
        (tmp_path / 'meta', METADATA_FILE, 40),
    ):
        damaged_copy(sample_bag, target, name, cut, [(cut // 2, 0x5A)])
        result = stf('bag', 'info', str(target), check=False)
        assert result.returncode in (0, 1), result
        assert 'Traceback' not in result.stdout + result.stderr
        assert result.stdout if result.returncode == 0 else result.stderr.startswith('stf: ')
        CASES['bags: stf bag info'] += 1
