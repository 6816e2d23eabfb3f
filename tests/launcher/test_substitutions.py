"""Substitution grammar and the safe ``$(eval)`` evaluator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stf_nodes.launcher.model import LaunchError
from stf_nodes.launcher.parser import load_launch
from stf_nodes.launcher.substitutions import (
    Call,
    Context,
    find_pkg_share,
    parse,
    safe_eval,
    substitute,
)

CONTEXT = Context(
    configs={'count': '3', 'ns': 'factory_1', 'empty': '', 'name': 'count'},
    env={'HOME_DIR': '/home/x'},
    filename=Path('/launch/dir/a.launch.xml'),
)


def test_parse_nested_quoted_arguments() -> None:
    parts = parse("a $(eval '$(var count) >= 2') b")
    assert parts[0] == 'a '
    assert parts[2] == ' b'
    call = parts[1]
    assert isinstance(call, Call)
    assert call.command == 'eval'
    (arg,) = call.args
    assert arg == (Call(command='var', args=(('count',),)), ' >= 2')


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('plain $ text', 'plain $ text'),
        ('$(var ns)/hbw', 'factory_1/hbw'),
        ('[$(var empty)]', '[]'),
        ('$(var $(var name))', '3'),
        ('$(env HOME_DIR)/x', '/home/x/x'),
        ('$(env MISSING fallback)', 'fallback'),
        ("$(env MISSING '')", ''),
        ("$(eval '$(var count) * 2 + 1')", '7'),
        ('$(eval \'"$(var ns)" != ""\')', 'True'),
        ('$(eval \'"$(var empty)" != ""\')', 'False'),
        ('$(dirname)/b.launch.xml', '/launch/dir/b.launch.xml'),
        ('$(filename)', '/launch/dir/a.launch.xml'),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, CONTEXT) == expected


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('$(var nope)', 'undefined launch configuration $(var nope)'),
        ('$(env MISSING)', 'MISSING is not set'),
        ('$(anon x)', 'unsupported substitution $(anon'),
        ('$(var a b)', 'takes 1..1 arguments'),
        ('$(var count', 'unterminated substitution'),
        ("$(eval 'x)", "unterminated ' quote"),
        ('$( var x)', 'expected a substitution name'),
    ],
)
def test_substitute_errors(text: str, message: str) -> None:
    with pytest.raises(LaunchError, match=re.escape(message)):
        substitute(text, CONTEXT)


@pytest.mark.parametrize(
    ('expression', 'expected'),
    [
        ('1 + 2 * 3', 7),
        ('7 // 2 + 7 % 2 - 2 ** 3', -4),
        ('1 / 4', 0.25),
        ('3 >= 2 and not False', True),
        ('1 < 2 < 3', True),
        ('3 > 2 > 2', False),
        ('0 or "x"', 'x'),
        ('"a" in ["a", "b"]', True),
        ('"c" not in ("a", "b")', True),
        ('"yes" if 2 > 1 else "no"', 'yes'),
        ('-1.5', -1.5),
    ],
)
def test_safe_eval(expression: str, expected: object) -> None:
    assert safe_eval(expression) == expected


@pytest.mark.parametrize(
    'expression',
    [
        '__import__("os").system("true")',
        'open("/etc/passwd")',
        'x',
        '(1).real',
        '[1][0]',
        '[i for i in (1,)]',
        'lambda: 1',
        '9 ** 99999',
        '"a" * 10 ** 9',
        '1 / 0',
        '1 +',
        '1 is 1',
        '1 is not 2',
        "'%*d' % (10**9, 1)",
        "'%s' % 1",
        "('a' * 10000) * 10000",
        "('ab' * 5000) + ('ab' * 5000)",
        '((2 ** 64) ** 64) ** 64',
        '(10 ** 1000) * (10 ** 1000)',
        '[1] * 10001',
        '-' * 100_000 + '1',
        '(' * 500 + '1' + ')' * 500,
        ' + '.join(['1'] * 5000),
        'not ' * 2000 + 'True',
        '1' * 20_000,
    ],
)
def test_safe_eval_rejects(expression: str) -> None:
    """Every failure is a LaunchError (never KeyError, RecursionError, MemoryError), quotes at
    most a short prefix of the expression, and nothing large is ever built."""
    with pytest.raises(LaunchError, match=r'\$\(eval') as refused:
        safe_eval(expression)
    assert len(str(refused.value)) < 200


def test_a_bad_eval_names_file_and_line(tmp_path: Path) -> None:
    launch = tmp_path / 'bomb.launch.xml'
    launch.write_text(
        """<launch>
  <arg name="a" default="1"/>
  <let name="b" value="$(eval '(&quot;x&quot; * 10000) * 10000')"/>
</launch>
"""
    )
    with pytest.raises(LaunchError, match=r'bomb\.launch\.xml:3: .*result too large'):
        load_launch(launch, {})


def test_find_pkg_share_of_this_package_holds_launch_files() -> None:
    assert (find_pkg_share('stf_digital_twin') / 'launch' / 'factory.launch.xml').is_file()


def test_find_pkg_share_uses_ament_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'other_pkg').touch()
    (tmp_path / 'share' / 'other_pkg').mkdir()
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    assert find_pkg_share('other_pkg') == tmp_path / 'share' / 'other_pkg'
    with pytest.raises(LaunchError, match="package 'missing_pkg' not found"):
        find_pkg_share('missing_pkg')
