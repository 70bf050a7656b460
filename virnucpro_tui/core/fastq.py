"""A strict FASTQ reader: (title, sequence) per record, quality checked and then dropped.

The published model scores sequences only, so the quality string is checked (its length equals
the sequence's, its characters are Phred+33 printable ASCII) and ignored. Records are the usual
four lines; wrapped records (sequence and quality over several lines, which Biopython's
``FastqGeneralIterator`` also reads) are accepted, the quality then read up to the sequence's
length. Every problem is a :class:`FastqProblem` naming the record and the line, so that the
caller can print one line (docs/reliability.md#bad-input).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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
    pending: tuple[int, str] | None = None
    record = 0
    while True:
        at, header = pending if pending is not None else next(numbered, (0, ""))
        pending = None
        if not header:
            return
        if not header.strip():
            continue
        record += 1
        if header[0] != "@":
            raise FastqProblem(
                record, at, f"expected a header line starting with '@', found {_shown(header)}"
            )
        title = header[1:].rstrip()
        seq, seq_lines, plus_at = _sequence(numbered, record, title, at)
        quality, pending = _quality(numbered, record, title, len(seq), seq_lines <= 1, plus_at)
        bad = _NOT_QUALITY.search(quality)
        if bad:
            raise FastqProblem(
                record,
                plus_at + 1,
                f"quality has {bad.group()!r} at position {bad.start() + 1}, not a Phred character",
                _first_word(title),
            )
        yield title, seq


def _sequence(
    numbered: Iterator[tuple[int, str]], record: int, title: str, at: int
) -> tuple[str, int, int]:
    """The sequence lines up to the '+' line (the header is line ``at``): the sequence, its
    number of lines, the '+' line's number."""
    parts: list[str] = []
    rid = _first_word(title)
    for at, line in numbered:  # ``at``: the last line read, after the loop too
        first = line[:1]
        if first == "+":
            again = line[1:].rstrip()
            if again and again != title:
                raise FastqProblem(
                    record, at, f"the '+' line names another record ({_shown(line)})", rid
                )
            return "".join(parts), len(parts), at
        if first == "@" and parts:
            raise FastqProblem(
                record, at, f"missing '+' line (the next header {_shown(line)} came first)", rid
            )
        parts.append(line.rstrip())
    where = "before its '+' line" if parts else "after its header"
    raise FastqProblem(record, at, f"truncated record: the file ends {where}", rid)


def _quality(
    numbered: Iterator[tuple[int, str]],
    record: int,
    title: str,
    seq_len: int,
    one_line: bool,
    plus_at: int,
) -> tuple[str, tuple[int, str] | None]:
    """The quality (one line when the sequence was one line, else lines up to the sequence's
    length) and the line after it, if any."""
    rid = _first_word(title)
    parts: list[str] = []
    got = 0
    line = ""
    for _at, line in numbered:
        parts.append(line.rstrip())
        got += len(parts[-1])
        if one_line or got >= seq_len:
            break
    else:
        if not parts:
            raise FastqProblem(
                record, plus_at, "truncated record: the file ends before its quality line", rid
            )
    after = next(numbered, None)
    if got != seq_len:
        if got < seq_len and after is None and not line.endswith("\n"):
            raise FastqProblem(
                record,
                plus_at + 1,
                f"truncated record: the file ends in its quality line ({got} of {seq_len} characters)",
                rid,
            )
        raise FastqProblem(
            record,
            plus_at + 1,
            f"sequence and quality have different lengths ({seq_len} and {got})",
            rid,
        )
    return "".join(parts), after
