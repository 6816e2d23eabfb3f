"""A CDR codec generated per message type: fewer Python calls per message than rosbags'.

rosbags' generated code (kept as the reference: `tests/interfaces/test_codec.py` checks this
codec against it byte for byte, both ways, for every type) makes one `struct` call per field
and looks the nested types up per message. This one generates, once per type and cached, an
encoder and a decoder function in which

- nested messages are inlined: their fields join the parent's;
- every run of primitive fields (with the length prefix of a string or sequence that ends it)
  is one `struct` call, with the alignment padding in the format. CDR aligns each field to its
  size relative to the start of the payload (after the 4-byte encapsulation header); where the
  position is not known when the code is generated (after a string), the run's struct is
  taken from a table indexed by the position modulo 8;
- primitive arrays and sequences are numpy arrays: `frombuffer` to decode (as rosbags does: a
  read-only view of the payload), the array's buffer appended to encode.

Positions in generated code are absolute in the buffer that starts with the header, so the
payload offset of position `p` is `p - 4` and the padding before a field of alignment `a` is
`(4 - p) % a`.

The encoder accepts exactly what the decoder yields (numpy arrays of the field's dtype, lists
of messages); anything else (plain lists, wrong types, out-of-range values) raises TypeError,
ValueError, OverflowError, AttributeError, BufferError or `struct.error`, and
`stf_nodes.interfaces.serialize` normalises the message through its validating converter.
The decoder raises `SerdeError` on truncated input, bad string terminators, invalid UTF-8 and
sequence counts that cannot fit the remaining bytes; it never reads out of bounds and
allocates no more than the input's size.

`byte` is signed (struct `b`, numpy int8) as in rosbags, whose bytes it must equal; encoding
also takes uint8 arrays for `byte[]` fields (the same bytes). Big-endian input (encapsulation
0) is rare and left to rosbags.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.serde import SerdeError

__all__ = ['Codec', 'build_codecs']

if sys.byteorder != 'little':  # pragma: no cover - every supported host is little endian
    raise ImportError('stf_nodes.cdr assumes a little-endian host')

HEADER = b'\x00\x01\x00\x00'  # CDR_LE encapsulation, options 0
_FORMATS = {
    'bool': '?',
    'byte': 'b',
    'char': 'B',
    'int8': 'b',
    'uint8': 'B',
    'int16': 'h',
    'uint16': 'H',
    'int32': 'i',
    'uint32': 'I',
    'int64': 'q',
    'uint64': 'Q',
    'float32': 'f',
    'float64': 'd',
}
_DTYPES = {
    'bool': np.dtype(np.bool_),
    'byte': np.dtype(np.int8),
    'char': np.dtype(np.uint8),
    'int8': np.dtype(np.int8),
    'uint8': np.dtype(np.uint8),
    'int16': np.dtype(np.int16),
    'uint16': np.dtype(np.uint16),
    'int32': np.dtype(np.int32),
    'uint32': np.dtype(np.uint32),
    'int64': np.dtype(np.int64),
    'uint64': np.dtype(np.uint64),
    'float32': np.dtype(np.float32),
    'float64': np.dtype(np.float64),
}
_ALL = frozenset(range(8))


def _size(base: str) -> int:
    return struct.calcsize(_FORMATS[base])


def _pad(position: int, alignment: int) -> int:
    return (4 - position) % alignment


@dataclass(frozen=True)
class Codec:
    """The generated functions of one type."""

    name: str
    #: message -> CDR bytes with the encapsulation header.
    encode: Callable[[Any], bytes]
    #: (bytes, absolute position) -> (message, position after it).
    decode: Callable[[bytes, int], tuple[Any, int]]
    source: str


@dataclass
class _Run:
    """Primitive values packed by one struct call: (format char, expression) in order."""

    items: list[tuple[str, str]] = field(default_factory=list)


class _Writer:
    """Lines of a generated function, with the set of possible positions modulo 8."""

    def __init__(self, residues: frozenset[int], namespace: dict[str, Any], prefix: str) -> None:
        self.lines: list[str] = []
        self.tail: list[str] = []  # decoder: the construction of the messages, at the end
        self.run = _Run()
        self.residues = residues  # before the pending run
        self.namespace = namespace
        self.prefix = prefix
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f'{prefix}{self.counter}'

    def const(self, value: Any, prefix: str) -> str:
        """A global of the generated module (structs, tables, dtypes), unique to this writer."""
        name = f'{self.prefix}{self.fresh(prefix)}'
        self.namespace[name] = value
        return name

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append('    ' * indent + line)


def _layout(items: list[str], start: int) -> tuple[str, int]:
    """The struct format (with pad bytes) of format chars packed from position `start`, and the
    position after them."""
    parts = ['<']
    position = start
    for char in items:
        size = struct.calcsize(char)
        pad = _pad(position, size)
        parts.append('x' * pad + char)
        position += pad + size
    return ''.join(parts), position


def _after_array(residues: frozenset[int], size: int, length: int | None) -> frozenset[int]:
    """Possible positions mod 8 after a primitive array (`length` None: a sequence, whose
    elements are padded only when there are any)."""
    if length is None:
        return _ALL
    return frozenset((r + _pad(r, size) + length * size) % 8 for r in residues)


def _run_table(chars: list[str], residues: frozenset[int]) -> tuple[dict[int, str], frozenset[int]]:
    formats, after = {}, set()
    for residue in residues:
        fmt, end = _layout(chars, residue)
        formats[residue] = fmt
        after.add(end % 8)
    return formats, frozenset(after)


class _Generator:
    def __init__(self, fielddefs: dict[str, Any]) -> None:
        self.fielddefs = fielddefs

    def fields(self, name: str) -> list[tuple[str, Any]]:
        return list(self.fielddefs[name][1])

    def alignment(self, desc: Any) -> int:
        kind, rest = desc
        if kind == Nodetype.BASE:
            return 4 if rest[0] == 'string' else _size(rest[0])
        if kind == Nodetype.NAME:
            return self.alignment(self.fields(rest)[0][1])
        if kind == Nodetype.ARRAY:
            return self.alignment(rest[0])
        return 4

    # -- encoder ------------------------------------------------------------------------

    def encoder_source(self, name: str, writer: _Writer, classes: dict[str, str]) -> None:
        """Body of `enc(m, out)`: append message `m` to bytearray `out`."""
        self._encode_fields(name, 'm', writer, classes)
        self._flush_encode(writer)

    def _flush_encode(self, writer: _Writer) -> None:
        chars = [char for char, _ in writer.run.items]
        if not chars:
            return
        values = ', '.join(expr for _, expr in writer.run.items)
        formats, after = _run_table(chars, writer.residues)
        if len(formats) == 1:
            (fmt,) = formats.values()
            pack = writer.const(struct.Struct(fmt).pack, 'P')
            writer.emit(f'out += {pack}({values})')
        else:
            table = [struct.Struct(formats[r]).pack if r in formats else None for r in range(8)]
            packs = writer.const(tuple(table), 'T')
            writer.emit(f'out += {packs}[len(out) & 7]({values})')
        writer.run = _Run()
        writer.residues = after

    def _encode_fields(
        self, name: str, path: str, writer: _Writer, classes: dict[str, str]
    ) -> None:
        for fieldname, desc in self.fields(name):
            self._encode_one(desc, f'{path}.{fieldname}', writer, classes)

    def _encode_one(self, desc: Any, expr: str, writer: _Writer, classes: dict[str, str]) -> None:
        kind, rest = desc
        if kind == Nodetype.NAME:
            self._encode_fields(rest, expr, writer, classes)
            return
        if kind == Nodetype.BASE:
            if rest[0] != 'string':
                writer.run.items.append((_FORMATS[rest[0]], expr))
                return
            data = writer.fresh('s')
            writer.emit(f'{data} = {expr}.encode()')
            writer.run.items.append(('I', f'len({data}) + 1'))
            self._flush_encode(writer)
            writer.emit(f'out += {data}')
            writer.emit('out.append(0)')
            writer.residues = _ALL
            return
        sub, length = rest
        value = writer.fresh('v')
        writer.emit(f'{value} = {expr}')
        if kind == Nodetype.ARRAY:
            writer.emit(f'if len({value}) != {length}:')
            writer.emit(f"raise ValueError('{expr[2:]}: expected {length} elements')", 2)
        else:
            writer.run.items.append(('I', f'len({value})'))
            self._flush_encode(writer)
        if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
            self._encode_primitive_array(
                sub[1][0], value, length if kind == Nodetype.ARRAY else None, writer
            )
            return
        self._flush_encode(writer)
        item = writer.fresh('i')
        writer.emit(f'for {item} in {value}:')
        if sub[0] == Nodetype.NAME:
            writer.emit(f'{classes[sub[1]]}({item}, out)', 2)
        else:
            data = writer.fresh('s')
            writer.emit(f'{data} = {item}.encode()', 2)
            writer.emit('out += ZEROS[(4 - len(out)) & 3]', 2)
            writer.emit(f'out += U32({data}.__len__() + 1)', 2)
            writer.emit(f'out += {data}', 2)
            writer.emit('out.append(0)', 2)
        writer.residues = _ALL

    def _encode_primitive_array(
        self, base: str, value: str, length: int | None, writer: _Writer
    ) -> None:
        self._flush_encode(writer)
        size = _size(base)
        accepted = {_DTYPES[base]} | ({_DTYPES['uint8']} if base == 'byte' else set())
        dtypes = writer.const(frozenset(accepted), 'D')
        writer.emit(f'if {value}.dtype not in {dtypes} or {value}.ndim != 1:')
        writer.emit(f"raise TypeError('expected a numpy array of {base}')", 2)
        pads = {_pad(r, size) for r in writer.residues}
        if pads != {0}:
            guard = '' if length is not None else f'if {value}.size: '
            if len(pads) == 1:
                writer.emit(f'{guard}out += ZEROS[{pads.pop()}]')
            else:
                writer.emit(f'{guard}out += ZEROS[(4 - len(out)) & {size - 1}]')
        writer.emit(f'out += {value}.data')
        writer.residues = _after_array(writer.residues, size, length)

    # -- decoder ------------------------------------------------------------------------

    def decoder_source(self, name: str, writer: _Writer, classes: dict[str, str]) -> str:
        """Body of `dec(data, pos)`; returns the variable holding the message.

        Messages are built once every value is read, inner ones first, by `object.__new__`
        and slot assignments: a third of the cost of the dataclass constructor, whose defaults
        would all be overwritten.
        """
        built = self._decode_message(name, writer, classes)
        self._flush_decode(writer)
        writer.lines.extend(writer.tail)
        return built

    def _flush_decode(self, writer: _Writer) -> None:
        items = writer.run.items
        if not items:
            return
        chars = [char for char, _ in items]
        targets = ', '.join(var for _, var in items) + ','
        formats, after = _run_table(chars, writer.residues)
        if len(formats) == 1:
            (fmt,) = formats.values()
            compiled = struct.Struct(fmt)
            unpack = writer.const(compiled.unpack_from, 'U')
            writer.emit(f'{targets} = {unpack}(data, pos)')
            writer.emit(f'pos += {compiled.size}')
        else:
            table = [
                (struct.Struct(formats[r]).unpack_from, struct.calcsize(formats[r]))
                if r in formats
                else None
                for r in range(8)
            ]
            name = writer.const(tuple(table), 'T')
            unpack, size = writer.fresh('u'), writer.fresh('n')
            writer.emit(f'{unpack}, {size} = {name}[pos & 7]')
            writer.emit(f'{targets} = {unpack}(data, pos)')
            writer.emit(f'pos += {size}')
        writer.run = _Run()
        writer.residues = after

    def _decode_message(self, name: str, writer: _Writer, classes: dict[str, str]) -> str:
        fields = self.fields(name)
        values = [self._decode_one(desc, writer, classes) for _, desc in fields]
        built = writer.fresh('o')
        writer.tail.append(f'    {built} = new({classes[f"class:{name}"]})')
        for (field_name, _), value in zip(fields, values, strict=True):
            writer.tail.append(f'    {built}.{field_name} = {value}')
        return built

    def _decode_one(self, desc: Any, writer: _Writer, classes: dict[str, str]) -> str:
        kind, rest = desc
        if kind == Nodetype.NAME:
            return self._decode_message(rest, writer, classes)
        if kind == Nodetype.BASE:
            var = writer.fresh('x')
            if rest[0] != 'string':
                writer.run.items.append((_FORMATS[rest[0]], var))
                return var
            length = writer.fresh('n')
            writer.run.items.append(('I', length))
            self._flush_decode(writer)
            self._decode_string_body(length, var, writer, 1)
            writer.residues = _ALL
            return var
        sub, length = rest
        var = writer.fresh('x')
        if kind == Nodetype.ARRAY:
            self._flush_decode(writer)
            writer.emit(f'{var} = {length}')
        else:
            writer.run.items.append(('I', var))
            self._flush_decode(writer)
            minimum = 1  # bytes an element takes at least
            if sub[0] == Nodetype.BASE:
                minimum = 5 if sub[1][0] == 'string' else _size(sub[1][0])
            writer.emit(f'if {var} * {minimum} > len(data) - pos:')
            writer.emit(f"raise SerdeError(f'sequence of {{{var}}} elements at {{pos}}')", 2)
        if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
            base = sub[1][0]
            size = _size(base)
            pads = {_pad(r, size) for r in writer.residues}
            if pads != {0}:
                guard = '' if kind == Nodetype.ARRAY else f'if {var}: '
                amount = pads.pop() if len(pads) == 1 else f'(4 - pos) & {size - 1}'
                writer.emit(f'{guard}pos += {amount}')
            dtype = writer.const(_DTYPES[base], 'D')
            writer.emit(f'{var} = frombuffer(data, {dtype}, {var}, pos)')
            writer.emit(f'pos += {var}.size * {size}')
            writer.residues = _after_array(
                writer.residues, size, length if kind == Nodetype.ARRAY else None
            )
            return var
        count = writer.fresh('c')
        writer.emit(f'{count} = {var}')
        writer.emit(f'{var} = []')
        writer.emit(f'for _ in range({count}):')
        if sub[0] == Nodetype.NAME:
            item = writer.fresh('e')
            writer.emit(f'{item}, pos = {classes[sub[1]]}(data, pos)', 2)
            writer.emit(f'{var}.append({item})', 2)
        else:
            length_var = writer.fresh('n')
            writer.emit('pos += (4 - pos) & 3', 2)
            writer.emit(f'({length_var},) = U32_FROM(data, pos)', 2)
            writer.emit('pos += 4', 2)
            self._decode_string_body(length_var, f'{var}.append', writer, 2, append=True)
        writer.residues = _ALL
        return var

    def _decode_string_body(
        self, length: str, target: str, writer: _Writer, indent: int, *, append: bool = False
    ) -> None:
        """`length` (with the NUL) was read; the string's bytes start at `pos`."""
        writer.emit(f'if {length} < 1 or data[pos + {length} - 1]:', indent)
        writer.emit(
            f"raise SerdeError(f'bad string of length {{{length}}} at {{pos}}')", indent + 1
        )
        text = f'data[pos:pos + {length} - 1].decode()'
        writer.emit(f'{target}({text})' if append else f'{target} = {text}', indent)
        writer.emit(f'pos += {length}', indent)


def build_codecs(
    fielddefs: dict[str, Any], class_of: Callable[[str], type], names: Iterable[str]
) -> dict[str, Codec]:
    """Generate the codecs of `names` and of every type they contain.

    `fielddefs` maps a type name to rosbags' (constants, fields); `class_of` gives the message
    class of a type name, which decoding constructs (positional arguments in field order).
    """
    generator = _Generator(fielddefs)
    wanted: list[str] = []

    def collect(name: str) -> None:
        if name in wanted:
            return
        wanted.append(name)
        for _, (kind, rest) in generator.fields(name):
            nested = (
                rest if kind == Nodetype.NAME else rest[0][1] if kind != Nodetype.BASE else None
            )
            if isinstance(nested, str):
                collect(nested)

    for name in names:
        collect(name)
    namespace: dict[str, Any] = {
        'frombuffer': np.frombuffer,
        'new': object.__new__,
        'SerdeError': SerdeError,
        'ZEROS': tuple(bytes(n) for n in range(8)),
        'U32': struct.Struct('<I').pack,
        'U32_FROM': struct.Struct('<I').unpack_from,
    }
    symbols: dict[str, str] = {}
    for index, name in enumerate(wanted):
        symbols[name] = f'enc_{index}'
        symbols[f'dec:{name}'] = f'dec_{index}'
        symbols[f'class:{name}'] = f'C_{index}'
        namespace[f'C_{index}'] = class_of(name)
    dec_symbols = {**symbols, **{n: symbols[f'dec:{n}'] for n in wanted}}
    sources = {}
    for index, name in enumerate(wanted):
        # Nested in a sequence, a type starts anywhere; at the top, at position 4 (payload
        # offset 0), where its first runs are static.
        enc_writer = _Writer(_ALL, namespace, f'E{index}_')
        generator.encoder_source(name, enc_writer, symbols)
        dec_writer = _Writer(_ALL, namespace, f'D{index}_')
        built = generator.decoder_source(name, dec_writer, dec_symbols)
        top_writer = _Writer(frozenset({4}), namespace, f'TE{index}_')
        generator.encoder_source(name, top_writer, symbols)
        top_dec = _Writer(frozenset({4}), namespace, f'TD{index}_')
        top_built = generator.decoder_source(name, top_dec, dec_symbols)
        lines = [
            f'def enc_{index}(m, out):',
            *(enc_writer.lines or ['    pass']),
            f'def dec_{index}(data, pos):',
            *dec_writer.lines,
            f'    return {built}, pos',
            f'def encode_{index}(m):',
            '    out = bytearray(HEADER)',
            *top_writer.lines,
            '    return bytes(out)',
            f'def decode_{index}(data, pos):',
            *top_dec.lines,
            f'    return {top_built}, pos',
        ]
        sources[name] = '\n'.join(lines)
    namespace['HEADER'] = HEADER
    code = '\n'.join(sources.values())
    exec(compile(code, '<stf_nodes.cdr>', 'exec'), namespace)  # noqa: S102 - generated above
    return {
        name: Codec(
            name=name,
            encode=namespace[f'encode_{index}'],
            decode=namespace[f'decode_{index}'],
            source=sources[name],
        )
        for index, name in enumerate(wanted)
    }
