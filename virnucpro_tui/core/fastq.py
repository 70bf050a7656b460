"""A strict FASTQ reader: (title, sequence) per record, quality checked and then dropped.

The published model scores sequences only, so the quality string is checked (its length equals
the sequence's, its characters are Phred+33 printable ASCII) and ignored. Records are the usual
four lines; wrapped records (sequence and quality over several lines, which Biopython's
``FastqGeneralIterator`` also reads) are accepted, the quality then read up to the sequence's
length. Every problem is a :class:`FastqProblem` naming the record and the line, so that the
caller can print one line (docs/reliability.md#bad-input).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import NoReturn

_NOT_QUALITY = re.compile(r"[^!-~]")


class FastqProblem(Exception):
    """A malformed record: its 1-based number, the line where it went wrong, its id if known."""

    def __init__(self, record: int, line: int, problem: str, rid: str = "") -> None:
        super().__init__(problem)
        self.record, self.line, self.problem, self.rid = record, line, problem, rid


def _shown(line: str) -> str:
    text = line.rstrip("\n")
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _first_word(title: str) -> str:
    return title.split(None, 1)[0] if title.strip() else ""


def fastq_records(lines: Iterator[str], line_no: int = 0) -> Iterator[tuple[str, str]]:
    """(title, sequence) of each record of ``lines`` (text lines with their line ends, from the
    first header on; ``line_no`` lines came before it). Blank lines between records are skipped."""
    numbered = enumerate(lines, line_no + 1)
    record = 0
    for at, header in numbered:
        if header[0] != "@":
            if not header.strip():
                continue
            raise FastqProblem(
                record + 1, at, f"expected a header line starting with '@', found {_shown(header)}"
            )
        record += 1
        title = header[1:].rstrip()
        seq_line, plus_line = next(numbered, None), next(numbered, None)
        if (
            plus_line is not None
            and plus_line[1][:1] == "+"
            and seq_line is not None
            and seq_line[1][:1] not in ("@", "+", "")
        ):  # the usual four lines
            _check_plus(plus_line, record, title)
            seq, plus_at = seq_line[1].rstrip(), plus_line[0]
            quality = _one_quality_line(numbered, record, title, len(seq), plus_at)
        else:  # wrapped, or malformed: the lines already read are read again
            again = (line for line in (seq_line, plus_line) if line is not None)
            source = itertools.chain(again, numbered)
            seq, seq_lines, plus_at = _sequence(source, record, title, at)
            one_line = seq_lines <= 1
            quality = _quality(source, record, title, len(seq), one_line, plus_at)
        bad = _NOT_QUALITY.search(quality)
        if bad:
            raise FastqProblem(
                record,
                plus_at + 1,
                f"quality has {bad.group()!r} at position {bad.start() + 1}, not a Phred character",
                _first_word(title),
            )
        yield title, seq


def _check_plus(plus_line: tuple[int, str], record: int, title: str) -> None:
    again = plus_line[1][1:].rstrip()
    if again and again != title:
        raise FastqProblem(
            record,
            plus_line[0],
            f"the '+' line names another record ({_shown(plus_line[1])})",
            _first_word(title),
        )


def _one_quality_line(
    numbered: Iterator[tuple[int, str]], record: int, title: str, seq_len: int, plus_at: int
) -> str:
    line = next(numbered, None)
    if line is None:
        raise FastqProblem(
            record,
            plus_at,
            "truncated record: the file ends before its quality line",
            _first_word(title),
        )
    quality = line[1].rstrip()
    if len(quality) != seq_len:
        _length_problem(record, title, seq_len, len(quality), line)
    return quality


def _length_problem(
    record: int, title: str, seq_len: int, got: int, last: tuple[int, str]
) -> NoReturn:
    """Raise: a quality that ends with the file (no line end) is a truncated record."""
    at, line = last
    if got < seq_len and not line.endswith("\n"):
        problem = (
            f"truncated record: the file ends in its quality line ({got} of {seq_len} characters)"
        )
    else:
        problem = f"sequence and quality have different lengths ({seq_len} and {got})"
    raise FastqProblem(record, at, problem, _first_word(title))


def _sequence(
    numbered: Iterator[tuple[int, str]], record: int, title: str, at: int
) -> tuple[str, int, int]:
    """The sequence lines up to the '+' line (the header is line ``at``): the sequence, its
    number of lines, the '+' line's number."""
    parts: list[str] = []
    for at, line in numbered:  # ``at``: the last line read, after the loop too
        first = line[:1]
        if first == "+":
            _check_plus((at, line), record, title)
            return "".join(parts), len(parts), at
        if first == "@" and parts:
            problem = f"missing '+' line (the next header {_shown(line)} came first)"
            raise FastqProblem(record, at, problem, _first_word(title))
        parts.append(line.rstrip())
    where = "before its '+' line" if parts else "after its header"
    raise FastqProblem(record, at, f"truncated record: the file ends {where}", _first_word(title))


def _quality(
    numbered: Iterator[tuple[int, str]],
    record: int,
    title: str,
    seq_len: int,
    one_line: bool,
    plus_at: int,
) -> str:
    """The quality: one line when the sequence was one line, else lines up to its length."""
    parts: list[str] = []
    got = 0
    last = (plus_at, "")
    for last in numbered:
        parts.append(last[1].rstrip())
        got += len(parts[-1])
        if one_line or got >= seq_len:
            break
    if not parts:
        raise FastqProblem(
            record,
            plus_at,
            "truncated record: the file ends before its quality line",
            _first_word(title),
        )
    if got != seq_len:
        _length_problem(record, title, seq_len, got, last)
    return "".join(parts)
